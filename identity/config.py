"""The regional identity server's config model (``identity.server`` of routes.yaml).

Touches: nothing.

Read by :class:`identity.pdqm.IdentityServerClient`; :mod:`eai.config` re-exports it
as part of the ``identity:`` section. Built on the base modules :mod:`eai.model` and
:mod:`eai.net` only, so :mod:`identity` never imports :mod:`eai.config`.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from eai.model import Duration, Model
from eai.net import TlsClientConfig

__all__ = ["IdentityServerConfig"]

_SYSTEM = r"^(urn:oid:[0-2](\.(0|[1-9][0-9]*))+|https?://\S+|urn:[A-Za-z0-9][A-Za-z0-9-]*:\S+)$"


class IdentityServerConfig(Model):
    """The regional identity server, queried over IHE PDQm (ITI-78) and PIXm (ITI-83)."""

    url: str = Field(
        pattern=r"^https?://[^\s?#]+$",
        description="FHIR base URL of the regional identity server ([base] of [base]/Patient)",
        examples=["https://identite.grades.example/fhir"],
    )
    tls: TlsClientConfig | None = Field(
        default=None,
        description="CA bundle and client certificate (mutual TLS); needs an https url",
    )
    timeout: Duration = Field(
        default=5.0, gt=0, description="longest wait for one answer (connect, send, read)"
    )
    connect_timeout: Duration = Field(
        default=2.0, gt=0, description="longest wait to open a connection"
    )
    cache_ttl: Duration = Field(
        default=300.0,
        ge=0,
        description="how long an answer is reused (in memory only); 0: never",
        examples=["5m"],
    )
    cache_size: int = Field(
        default=10_000, ge=0, description="most answers kept in the cache (oldest dropped first)"
    )
    regional_id_system: str = Field(
        pattern=_SYSTEM,
        description="system (OID as urn:oid: or URI) of the regional patient identifier",
        examples=["urn:oid:1.2.250.1.999.1.1"],
    )
    birth_place_param: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z][A-Za-z0-9_-]*$",
        description="the server's search parameter for the INSEE birth place code, when it "
        "has one (a French extension to PDQm); unset: the birth place is only compared",
        examples=["birthplace"],
    )
    outage_backoff: Duration = Field(
        default=5.0,
        ge=0,
        description="after a failed connection or a 5xx, answer 'unavailable' at once for "
        "this long instead of waiting for each request's timeout",
    )
    max_connections: int = Field(
        default=10, ge=1, description="simultaneous connections to the server"
    )
    retry_every: Duration = Field(
        default=30.0,
        gt=0,
        description="how often the messages held while the server was unreachable are "
        "reconciled again (and released when it answers)",
        examples=["30s"],
    )
    alert_to: tuple[str, ...] = Field(
        default=(),
        description="addresses mailed when the server becomes unreachable and when it "
        "answers again (needs identity.smtp)",
        examples=[["exploitation@grades.example"]],
    )

    @model_validator(mode="after")
    def _check_tls(self) -> IdentityServerConfig:
        tls = self.tls
        if tls is not None:
            if not self.url.startswith("https://"):
                raise ValueError("tls needs an https:// url")
            if (tls.cert is None) != (tls.key is None):
                raise ValueError("tls.cert and tls.key go together (mutual TLS)")
        return self
