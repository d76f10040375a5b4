"""The ``routes.yaml`` model of a FHIR destination (``type: fhir``) and its OAuth2 client.

Touches: nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, HttpUrl, SecretStr, model_validator

from eai.config import DestinationConfig, Duration, Model, TlsClientConfig
from eai.messages import SendLimits

__all__ = ["FhirDestinationConfig", "OAuth2ClientConfig", "PatientMatch", "SendMode"]

SendMode = Literal["transaction", "batch", "update"]
PatientMatch = Literal["ins_then_local", "ins", "local"]


class OAuth2ClientConfig(Model):
    """OAuth2 client credentials grant (RFC 6749 4.4) for the FHIR server's access token."""

    token_url: HttpUrl = Field(description="the authorisation server's token endpoint")
    client_id: str = Field(min_length=1, description="this engine's client id")
    client_secret: SecretStr | None = Field(
        None, description="client secret (client_secret_post); or private_key"
    )
    private_key: Path | None = Field(
        None,
        description="PEM private key (RSA or EC) signing a private_key_jwt client assertion "
        "(RFC 7523) instead of a secret",
    )
    key_id: str | None = Field(None, description="kid of private_key, sent in the JWT header")
    scope: str | None = Field(None, description="scope asked for", examples=["system/*.write"])
    audience: str | None = Field(
        None, description="aud of the client assertion; default: token_url"
    )
    early_refresh: Duration = Field(
        30.0, ge=0, description="renew the token this long before it expires"
    )

    @model_validator(mode="after")
    def _one_credential(self) -> OAuth2ClientConfig:
        if (self.client_secret is None) == (self.private_key is None):
            raise ValueError("give exactly one of client_secret and private_key")
        return self


class FhirDestinationConfig(DestinationConfig):
    """A FHIR R4 server taking the Bundles a route's mapping made (SCAD, a data warehouse)."""

    type: Literal["fhir"] = "fhir"
    base_url: HttpUrl = Field(
        description="the server's FHIR base (the transaction is POSTed there)",
        examples=["https://scad.example.fr/fhir"],
    )
    mode: SendMode = Field(
        "transaction",
        description="transaction: one all-or-nothing Bundle, resources POSTed (the Patient "
        "created only if absent); batch: entries independent, each failure named; update: "
        "a transaction whose resources are conditional updates on their identifiers (or "
        "updates on their Bundle ids), so that a replay does not duplicate them",
    )
    patient_match: PatientMatch = Field(
        "ins_then_local",
        description="what finds an existing Patient (ifNoneExist): the qualified INS, else "
        "the local identifier (ins_then_local); the INS only (ins: no INS, delivery dead); "
        "the local identifier only (local)",
    )
    auth: Literal["none", "oauth2", "mtls"] = Field(
        "none", description="oauth2: a bearer token; mtls: the client certificate of tls"
    )
    oauth2: OAuth2ClientConfig | None = Field(None, description="the token client (auth: oauth2)")
    tls: TlsClientConfig | None = Field(
        None, description="TLS (>= 1.2) settings; cert and key for mutual TLS"
    )
    connections: int = Field(
        4, ge=1, le=64, description="concurrent requests to the server (connection pool width)"
    )
    connect_timeout: Duration = Field(10.0, gt=0, description="time allowed to connect")
    response_timeout: Duration = Field(
        60.0, gt=0, description="time allowed for the server's answer"
    )
    max_response_bytes: int = Field(
        16 * 1024 * 1024, gt=0, description="largest answer read from the server"
    )

    @model_validator(mode="after")
    def _auth_settings(self) -> FhirDestinationConfig:
        if self.auth == "oauth2" and self.oauth2 is None:
            raise ValueError("auth: oauth2 needs an oauth2 block")
        if self.auth != "oauth2" and self.oauth2 is not None:
            raise ValueError("an oauth2 block needs auth: oauth2")
        if self.auth == "mtls" and (self.tls is None or self.tls.cert is None):
            raise ValueError("auth: mtls needs tls.cert and tls.key")
        if self.tls is not None and self.base_url.scheme != "https":
            raise ValueError("tls is set but base_url is not https")
        return self

    def send_limits(self) -> SendLimits:
        return SendLimits(self.connections, self.connect_timeout, self.response_timeout)
