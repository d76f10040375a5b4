"""Test connector types for the config tests, registered around each test, and a base routes.yaml.

Touches: nothing (the registry, restored after each test by ``monkeypatch``). Import the
``connectors`` fixture into a test module to use it.
"""

from __future__ import annotations

from typing import Any, Literal

import pytest
from pydantic import Field

from eai import registry
from eai.config import (
    DestinationConfig,
    Duration,
    ListenerConfig,
)


def _no_factory(*args: Any) -> Any:
    raise AssertionError("not built in config tests")


class TcpListener(ListenerConfig):
    type: Literal["test-tcp"]
    bind: str = Field(description="host:port")
    max_message_bytes: int = Field(default=1 << 20, ge=1, description="largest message")


class DirListener(ListenerConfig):
    type: Literal["test-dir"]
    path: str = Field(description="directory polled")


class TcpDestination(DestinationConfig):
    type: Literal["test-tcp"]
    host: str = Field(description="peer host")
    port: int = Field(ge=1, le=65535, description="peer port")
    ack_timeout: Duration = Field(default=30.0, description="wait this long for the ACK")


class FakeMllpListener(ListenerConfig):
    """Stands in for connectors.mllp until it is registered."""

    type: Literal["mllp"]
    bind: str = Field(description="host:port")
    max_message_bytes: int = Field(default=1 << 20, ge=1, description="largest message")
    allowed_senders: tuple[str, ...] = Field(default=(), description="accepted MSH-4")


class FakeMllpDestination(DestinationConfig):
    type: Literal["mllp"]
    host: str = Field(description="peer host")
    port: int = Field(ge=1, le=65535, description="peer port")
    ack_timeout: Duration = Field(default=30.0, description="wait this long for the ACK")


TEST_LISTENERS: list[registry.ListenerSpec[Any]] = [
    registry.ListenerSpec("test-tcp", TcpListener, _no_factory, "test listener"),
    registry.ListenerSpec("test-dir", DirListener, _no_factory, "test listener"),
]


TEST_DESTINATIONS: list[registry.DestinationSpec[Any]] = [
    registry.DestinationSpec("test-tcp", TcpDestination, _no_factory, "test destination")
]


FAKE_MLLP = (
    registry.ListenerSpec("mllp", FakeMllpListener, _no_factory, "fake mllp"),
    registry.DestinationSpec("mllp", FakeMllpDestination, _no_factory, "fake mllp"),
)


@pytest.fixture(autouse=True)
def connectors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the test connectors (and a fake mllp if the real one is not there),
    on copies of the registry that are put back after the test."""
    try:
        registry.load_builtin_connectors()  # the real mllp, once connectors imports it
    except ImportError:
        pass
    monkeypatch.setattr(registry, "_listeners", dict(registry._listeners))
    monkeypatch.setattr(registry, "_destinations", dict(registry._destinations))
    for listener in TEST_LISTENERS:
        registry.register_listener(listener)
        registry.register_listener(listener)  # the same spec twice is harmless
    for destination in TEST_DESTINATIONS:
        registry.register_destination(destination)
    if "mllp" not in registry.listeners():
        registry.register_listener(FAKE_MLLP[0])
    if "mllp" not in registry.destinations():
        registry.register_destination(FAKE_MLLP[1])


BASE = """\
listeners:
  - name: in-a
    type: test-tcp
    bind: 127.0.0.1:2575
destinations:
  - name: out-b
    type: test-tcp
    host: 127.0.0.1
    port: 2576
routes:
  - name: r1
    from: [in-a]
    to: [out-b]
"""
