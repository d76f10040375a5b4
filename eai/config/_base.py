"""Base models shared by every piece of ``routes.yaml``: listener, destination, retry.

Touches: nothing.

``Model``, ``Duration`` and ``parse_duration`` come from :mod:`eai.model`, the TLS
models from :mod:`eai.net` (base modules that import no config); they are re-exported
here and by :mod:`eai.config`, so routes.yaml and the plugins' imports are unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import Field

from eai.messages import SendLimits
from eai.model import Duration, Model, parse_duration
from eai.net import TlsClientConfig, TlsServerConfig

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

    def needs_qualified_identity(self, flags: Mapping[str, str]) -> bool:
        """Whether a delivery of a message with these routing facts waits for a qualified
        identity (``held``); a connector may depend on the facts (MSSanté: only a mail for
        the patient's mailbox, which is its INS)."""
        return self.require_qualified_identity
