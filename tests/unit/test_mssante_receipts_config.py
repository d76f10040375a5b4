"""The receipts reader's config: TLS and credentials required, the password never shown,
folder names checked, and it is a listener type of its own in routes.yaml."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from connectors.mssante.receipts import MssanteReceiptsConfig
from eai import registry

BASE = {
    "name": "mss-receipts",
    "host": "imap.mssante.test",
    "tls": {"ca": "ca.pem", "cert": "bal.pem", "key": "bal.key"},
    "user": "labo-auto@labo.mssante.fr",
    "password": "s3cret-value",
}


def test_defaults_and_the_password_never_shown() -> None:
    cfg = MssanteReceiptsConfig.model_validate(BASE)
    assert (cfg.type, cfg.port, cfg.security) == ("mssante_receipts", 993, "tls")
    assert (cfg.folder, cfg.processed, cfg.quarantine) == (
        "INBOX",
        "EAI-Processed",
        "EAI-Quarantine",
    )
    assert cfg.poll_interval == 30.0
    assert "s3cret-value" not in repr(cfg) and "s3cret-value" not in str(cfg.model_dump())


@pytest.mark.parametrize(
    "change",
    [
        {"user": ""},
        {"password": None},
        {"tls": None},
        {"folder": 'IN"BOX'},
        {"quarantine": "a*b"},
        {"security": "none"},
        {"poll_interval": "0s"},
        {"extra": 1},
    ],
)
def test_refused(change: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        MssanteReceiptsConfig.model_validate({**BASE, **change})


def test_registered_as_a_listener_type() -> None:
    spec = registry.listeners()["mssante_receipts"]
    assert spec.config_model is MssanteReceiptsConfig
