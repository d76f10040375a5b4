"""The ``console:`` section of routes.yaml: the web console's address, TLS and sessions.

Touches: nothing.

Absent: no console. Present (even empty): ``eai run`` serves it on ``bind``.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from eai.config._exposure import is_loopback
from eai.model import Duration, Model
from eai.net import TlsServerConfig

__all__ = ["ConsoleConfig"]


class ConsoleConfig(Model):
    """The web console (docs/console.md): flows at a glance, messages, support actions."""

    bind: str = Field(
        default="127.0.0.1:8080",
        pattern=r"^\S+:\d{1,5}$",
        description="host:port the console listens on (HTTP, or HTTPS with tls)",
        examples=["127.0.0.1:8080"],
    )
    tls: TlsServerConfig | None = Field(
        default=None,
        description="serve HTTPS with this certificate (session cookies are then Secure); "
        "required outside loopback",
    )
    session_ttl: Duration = Field(
        default=8 * 3600.0, gt=0, description="a session ends this long after the login"
    )
    idle_timeout: Duration = Field(
        default=1800.0, gt=0, description="a session unused this long ends"
    )
    lock_after: int = Field(
        default=5, ge=1, le=100, description="failed logins in a row that lock an account"
    )
    lock_for: Duration = Field(
        default=900.0, gt=0, description="how long a locked account stays locked"
    )
    refresh: Duration = Field(
        default=2.0, ge=0.5, le=300, description="how often the overview refreshes itself"
    )

    @model_validator(mode="after")
    def _tls_outside_loopback(self) -> ConsoleConfig:
        if self.tls is None and not is_loopback(self.bind):
            raise ValueError(
                f"console.bind {self.bind} is outside loopback: passwords and session "
                "cookies would cross the network in clear; add console.tls (cert, key)"
            )
        return self
