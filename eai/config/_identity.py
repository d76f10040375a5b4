"""The ``identity:`` section of routes.yaml: charter files, contacts, SMTP, digests, and the
regional identity server (PDQm/PIXm) when there is one.

Touches: nothing.

The identity server's model, :class:`IdentityServerConfig`, is :mod:`identity.config`'s
(the client that reads it lives in :mod:`identity`, below the config); re-exported here.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator

from eai.model import Duration, Model
from identity.config import IdentityServerConfig

__all__ = ["IdentityConfig", "IdentityServerConfig", "SmtpConfig"]


class SmtpConfig(Model):
    host: str = Field(description="SMTP server for identity anomaly mails")
    port: int = Field(default=25, ge=1, le=65535, description="SMTP port")
    sender: str = Field(description="From: address of the mails", examples=["eai@grades.example"])
    starttls: bool = Field(default=False, description="upgrade the connection with STARTTLS")
    ssl: bool = Field(default=False, description="connect with implicit TLS (SMTPS, port 465)")
    username: str | None = Field(default=None, description="login, if the server needs one")
    password: SecretStr | None = Field(default=None, description="password for username")
    timeout: Duration = Field(default=30.0, description="connection and command timeout")


class IdentityConfig(Model):
    charter: tuple[Path, ...] = Field(
        default=(),
        description="regional charter files added to the bundled rules (same id replaces)",
        examples=[["identity/region-charter.yaml"]],
    )
    contacts: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description="interoperability contacts per establishment (MSH-4 value -> addresses)",
        examples=[{"CHU-X": ["interop@chu-x.example"]}],
    )
    smtp: SmtpConfig | None = Field(default=None, description="where anomaly mails are sent")
    digest_every: Duration = Field(
        default=86400.0, gt=0, description="one digest mail per establishment per period"
    )
    server: IdentityServerConfig | None = Field(
        default=None,
        description="the regional identity server to reconcile identities with (PDQm/PIXm); "
        "unset (the default): only the INS checks and the charter apply",
    )

    @model_validator(mode="after")
    def _check_alerts(self) -> IdentityConfig:
        if self.server is not None and self.server.alert_to and self.smtp is None:
            raise ValueError("identity.server.alert_to needs identity.smtp to send the alerts")
        return self
