"""The MLLP config models and their registration."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from connectors.mllp import MllpDestinationConfig, MllpListenerConfig
from eai import registry
from eai.net import split_bind


def test_registered_under_mllp() -> None:
    assert registry.listeners()["mllp"].config_model is MllpListenerConfig
    assert registry.destinations()["mllp"].config_model is MllpDestinationConfig


def test_listener_defaults() -> None:
    cfg = MllpListenerConfig(name="adt-in", bind="0.0.0.0:2575")
    assert (cfg.host, cfg.port) == ("0.0.0.0", 2575)
    assert cfg.max_message_bytes == 10 * 1024 * 1024
    assert cfg.allowed_senders is None
    assert cfg.max_connections == 64
    assert cfg.idle_timeout == 300.0
    assert cfg.frame_timeout == 60.0
    assert cfg.tls is None
    assert cfg.default_charset == "UNICODE UTF-8"


def test_listener_durations_parse() -> None:
    cfg = MllpListenerConfig(name="a", bind="h:1", idle_timeout="10m", frame_timeout="500ms")
    assert (cfg.idle_timeout, cfg.frame_timeout) == (600.0, 0.5)


@pytest.mark.parametrize(
    ("bind", "expected"),
    [("127.0.0.1:0", ("127.0.0.1", 0)), ("[::1]:2575", ("::1", 2575)), ("h:65535", ("h", 65535))],
)
def test_split_bind(bind: str, expected: tuple[str, int]) -> None:
    assert split_bind(bind) == expected


@pytest.mark.parametrize("bind", ["2575", ":2575", "host:", "host:65536", "host:-1", "host:ab"])
def test_bad_bind_refused(bind: str) -> None:
    with pytest.raises(ValidationError):
        MllpListenerConfig(name="a", bind=bind)


@pytest.mark.parametrize(
    "fields",
    [
        {"max_message_bytes": 0},
        {"max_connections": 0},
        {"allowed_senders": []},
        {"default_charset": "EBCDIC"},
        {"idle_timeout": "soon"},
        {"unknown": 1},
        {"tls": {"cert": "c.pem", "key": "k.pem", "require_client_cert": True}},
    ],
)
def test_listener_invalid(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        MllpListenerConfig.model_validate({"name": "a", "bind": "h:1", **fields})


def test_listener_is_frozen() -> None:
    cfg = MllpListenerConfig(name="a", bind="h:1")
    with pytest.raises(ValidationError):
        cfg.bind = "h:2"  # type: ignore[misc]


def test_every_field_is_described() -> None:
    for model in (MllpListenerConfig, MllpDestinationConfig):
        for name, field in model.model_fields.items():
            if name in ("name", "type", "retry"):
                continue
            assert field.description, f"{model.__name__}.{name}"


def test_destination_defaults_and_limits() -> None:
    cfg = MllpDestinationConfig(name="dpi", host="dpi.local", port=2575)
    assert (cfg.ack_timeout, cfg.connect_timeout, cfg.connections) == (30.0, 10.0, 1)
    assert cfg.max_ack_bytes == 1024 * 1024
    for bad in ({"port": 0}, {"port": 65536}, {"host": ""}, {"connections": 0}):
        with pytest.raises(ValidationError):
            MllpDestinationConfig.model_validate({"name": "d", "host": "h", "port": 1, **bad})


def test_schema_is_generated() -> None:
    schema = MllpListenerConfig.model_json_schema()
    assert schema["properties"]["type"]["const"] == "mllp"
    assert "bind" in schema["required"]
