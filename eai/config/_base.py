"""Base models and field types shared by every piece of ``routes.yaml``.

Touches: files (only to check that TLS paths exist when asked).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from eai.messages import SendLimits

__all__ = [
    "DestinationConfig",
    "Duration",
    "ListenerConfig",
    "Model",
    "RetryPolicy",
    "TlsClientConfig",
    "TlsServerConfig",
    "parse_duration",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """``"30s"``, ``"10m"``, ``"500ms"``, ``"1h"``, ``2`` (seconds) -> seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like 30s, 10m, 500ms")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _UNIT[m.group(2)]
    raise ValueError(f"invalid duration {value!r}: use a number of seconds or 30s, 10m, 500ms, 1h")


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": r"^\d+(\.\d+)?(ms|s|m|h|d)?$"},
            ],
            "description": "seconds, or a string such as 500ms, 30s, 10m, 1h",
        }
    ),
]


class Model(BaseModel):
    """Strict, frozen: an unknown key is an error, a loaded config never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RetryPolicy(Model):
    initial: Duration = Field(default=1.0, description="first backoff delay")
    max: Duration = Field(default=600.0, description="longest backoff delay")
    max_attempts: int | None = Field(
        default=None,
        ge=1,
        description="dead-letter after this many attempts; unset = retry forever",
    )
    jitter: float = Field(
        default=0.2, ge=0, le=1, description="random +/- fraction applied to each delay"
    )


class TlsServerConfig(Model):
    cert: Path = Field(description="PEM certificate chain of this listener")
    key: Path = Field(description="PEM private key of this listener")
    client_ca: Path | None = Field(
        default=None, description="PEM CA bundle; when set, client certificates are verified"
    )
    require_client_cert: bool = Field(
        default=False, description="refuse clients without a certificate signed by client_ca"
    )

    @model_validator(mode="after")
    def _client_ca_for_required_certs(self) -> TlsServerConfig:
        if self.require_client_cert and self.client_ca is None:
            raise ValueError("require_client_cert needs client_ca to verify clients against")
        return self


class TlsClientConfig(Model):
    ca: Path | None = Field(
        default=None, description="PEM CA bundle to verify the server; default: system"
    )
    cert: Path | None = Field(default=None, description="client certificate (mutual TLS)")
    key: Path | None = Field(default=None, description="client private key (mutual TLS)")
    server_hostname: str | None = Field(
        default=None, description="name to check in the server certificate"
    )


_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


IdentityStatusCode = Literal["PROV", "RECUP", "VALI", "QUAL"]


class IdentityStatusOverride(Model):
    """The identity status a PID-32 code gives, with and without an INS in PID-3."""

    with_ins: IdentityStatusCode = Field(description="status when PID-3 carries an INS")
    without_ins: IdentityStatusCode = Field(description="status when it does not")


class ListenerConfig(Model):
    """Fields every listener has; connector models subclass it and pin ``type``."""

    name: str = Field(pattern=_NAME, description="unique listener name, used by routes")
    type: str
    test_feed: bool = Field(
        default=False,
        description="a test feed: INS test/demo OIDs and test identities are accepted",
    )
    insecure: bool = Field(
        default=False,
        description="network listeners (mllp, http): accept a bind outside loopback without "
        "tls, credentials or allowed_networks (eai check refuses it otherwise)",
    )
    identity_status: dict[str, IdentityStatusOverride] = Field(
        default_factory=dict,
        description="PID-32 code -> identity status, overriding the default table "
        "(VALI+INS=QUAL, PROV+INS=RECUP, VALI=VALI, QUAL, RECUP, else PROV) for this listener",
        examples=[{"VALI": {"with_ins": "VALI", "without_ins": "VALI"}}],
    )


class DestinationConfig(Model):
    """Fields every destination has; connector models subclass it and pin ``type``."""

    name: str = Field(pattern=_NAME, description="unique destination name, used by routes")
    type: str
    require_qualified_identity: bool = Field(
        default=False,
        description="hold deliveries whose patient identity is not qualified (INS + QUAL); "
        "on by default for the DMP and MSSante connectors",
    )
    retry: RetryPolicy = Field(
        default_factory=lambda: RetryPolicy(), description="backoff between attempts"
    )

    def send_limits(self) -> SendLimits:
        """Pool width and time bounds of one send (the destination contract, read by the
        engine); a connector whose config has them overrides this."""
        return SendLimits()
