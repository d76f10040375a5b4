"""The HTTP intake listener's configuration model (listener type ``http``).

Touches: nothing (validation only).
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from connectors._cda_intake import MIB, CdaIntakeConfig
from connectors._http_auth import ApiKey, check_keys
from connectors._http_oauth import OAuth2Config
from eai.config import Duration, TlsServerConfig
from eai.net import BindAddress, NetworkList

__all__ = ["HttpListenerConfig"]


class HttpListenerConfig(CdaIntakeConfig):
    """An HTTP(S) endpoint receiving CDA R2 documents by ``POST``."""

    type: Literal["http"] = Field(
        default="http", description="listener type: CDA documents posted over HTTP(S)"
    )
    bind: BindAddress = Field(
        description="address and port to listen on, host:port (port 0: chosen by the OS)",
        examples=["0.0.0.0:8443", "127.0.0.1:8080"],
    )
    path: str = Field(
        default="/cda",
        pattern=r"^/[A-Za-z0-9._~/-]*$",
        description="the one request path documents are posted to",
        examples=["/cda", "/intake/cda"],
    )
    max_body_bytes: int = Field(
        default=20 * MIB,
        gt=0,
        description="largest accepted body; a bigger one is answered 413 and not stored",
        examples=[20 * MIB],
    )
    max_connections: int = Field(
        default=64, ge=1, description="simultaneous connections; one more is answered 503"
    )
    idle_timeout: Duration = Field(
        default=30.0,
        description="close a kept-alive connection that starts no request for this long (0: never)",
        examples=["30s"],
    )
    read_timeout: Duration = Field(
        default=60.0,
        gt=0,
        description="a request (headers and body) must arrive whole within this from its first "
        "byte, else 408; also bounds the TLS handshake and writing the answer",
        examples=["60s"],
    )
    tls: TlsServerConfig | None = Field(
        default=None,
        description="serve HTTPS; client_ca verifies client certificates "
        "(require_client_cert: mandatory)",
    )
    allowed_networks: NetworkList = Field(
        default=(),
        description="source addresses or CIDR networks allowed to connect; a connection from "
        "elsewhere is closed before anything is read (empty: any address)",
        examples=[["10.1.2.0/24", "192.0.2.7"]],
    )
    api_keys: tuple[ApiKey, ...] = Field(
        default=(),
        description="bearer keys accepted (Authorization: Bearer <key>), each stored as its "
        "SHA-256 with the name recorded as the sender; set: a request without one of them "
        "(or an allowed client certificate) is answered 401",
        examples=[[{"name": "lab-x", "sha256": "<64 hex digits>"}]],
    )
    allowed_subjects: tuple[str, ...] | None = Field(
        default=None,
        min_length=1,
        description="client certificate subjects accepted (needs tls.client_ca): the common "
        "name, or the whole DN in RFC 4514 form (CN=gam.chu-x,O=CHU X,C=FR); set: a request "
        "over a connection without one of them (or a valid api key) is refused",
        examples=[["gam.chu-x", "CN=lis.lab-y,O=Labo Y,C=FR"]],
    )

    oauth2: OAuth2Config | None = Field(
        default=None,
        description="accept OAuth2 access tokens (JWT, client credentials) from this issuer as "
        "bearer, checked against its published keys; the client id is recorded as the sender",
    )

    @field_validator("api_keys")
    @classmethod
    def _check_keys(cls, value: tuple[ApiKey, ...]) -> tuple[ApiKey, ...]:
        return check_keys(value)

    @model_validator(mode="after")
    def _subjects_need_verified_certificates(self) -> Self:
        if self.allowed_subjects is not None and (self.tls is None or self.tls.client_ca is None):
            raise ValueError(
                "allowed_subjects needs tls with client_ca: only a certificate verified "
                "against that CA says who the client is"
            )
        return self
