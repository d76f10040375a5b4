"""The ``alerts:`` section of routes.yaml: who is told, how often, and which rules watch what.

Touches: nothing.

Each rule is one entry of ``alerts.rules``, discriminated on ``rule``; its thresholds are
its own keys, ``only`` narrows it to some scopes (listener, destination or establishment
names), ``for`` is how long its condition must hold before it fires. The evaluation, the
state machine and the mails are :mod:`eai.alerts`'.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from eai.model import Duration, Model

__all__ = ["ALERT_RULES", "AlertRule", "AlertsConfig", "default_rules"]


class _Rule(Model):
    only: tuple[str, ...] = Field(
        default=(),
        description="the scopes (listener, destination or establishment names) this rule "
        "watches; empty: all of them",
        examples=[["dcc"]],
    )
    for_: Duration = Field(
        default=0.0,
        alias="for",
        description="how long the condition must hold before the alert fires (pending meanwhile)",
        examples=["1m"],
    )


class DestinationFailing(_Rule):
    """A destination with work pending and no successful send for ``after``."""

    rule: Literal["destination_failing"] = "destination_failing"
    after: Duration = Field(
        default=300.0,
        gt=0,
        description="no success for this long while work waits",
        examples=["5m"],
    )


class QueueAge(_Rule):
    """A destination whose oldest pending delivery is older than ``max_age``."""

    rule: Literal["queue_age"] = "queue_age"
    max_age: Duration = Field(default=1800.0, gt=0, examples=["30m"])


class DeadLetters(_Rule):
    """A destination that dead-lettered at least ``min`` deliveries within ``window``."""

    rule: Literal["dead_letters"] = "dead_letters"
    min: int = Field(default=1, ge=1, description="dead letters that make the alert fire")
    window: Duration = Field(default=3600.0, gt=0, examples=["1h"])


class RejectedRate(_Rule):
    """An establishment (MSH-4) with at least ``max`` rejected messages within ``window``."""

    rule: Literal["rejected_rate"] = "rejected_rate"
    max: int = Field(default=10, ge=1, description="rejected messages that make it fire")
    window: Duration = Field(default=600.0, gt=0, examples=["10m"])


class ListenerDown(_Rule):
    """A network listener of this node that is not listening (not bound, or closed)."""

    rule: Literal["listener_down"] = "listener_down"


class JournalFailing(_Rule):
    """Messages answered AE/CE because the journal could not write them."""

    rule: Literal["journal_failing"] = "journal_failing"
    window: Duration = Field(
        default=300.0, gt=0, description="a failure within this long keeps it firing"
    )


class DiskUsage(_Rule):
    """The data directory (journal) or a DICOM spool on a disk fuller than ``max_percent``."""

    rule: Literal["disk_usage"] = "disk_usage"
    max_percent: float = Field(default=90.0, gt=0, le=100, examples=[90])


class IdentityServer(_Rule):
    """The regional identity server (``identity.server``) does not answer."""

    rule: Literal["identity_server"] = "identity_server"


class CertExpiry(_Rule):
    """A TLS certificate (listeners, destinations) or signing certificate (the DMP's VIHF
    seal) that expires within ``within``."""

    rule: Literal["cert_expiry"] = "cert_expiry"
    within: Duration = Field(default=30 * 86400.0, gt=0, examples=["30d"])


class PeerCertRejected(_Rule):
    """A peer whose TLS certificate was refused within ``window``: a client of a listener,
    or the server a destination connects to."""

    rule: Literal["peer_cert_rejected"] = "peer_cert_rejected"
    window: Duration = Field(default=900.0, gt=0, examples=["15m"])


AlertRule = Annotated[
    DestinationFailing
    | QueueAge
    | DeadLetters
    | RejectedRate
    | ListenerDown
    | JournalFailing
    | DiskUsage
    | IdentityServer
    | CertExpiry
    | PeerCertRejected,
    Field(discriminator="rule"),
]

ALERT_RULES: tuple[type[_Rule], ...] = (
    DestinationFailing,
    QueueAge,
    DeadLetters,
    RejectedRate,
    ListenerDown,
    JournalFailing,
    DiskUsage,
    IdentityServer,
    CertExpiry,
    PeerCertRejected,
)
"""Every rule model, in the order ``eai alerts list`` and the docs show them."""


def default_rules() -> tuple[_Rule, ...]:
    """Every rule with its default thresholds (``alerts:`` without ``rules:``)."""
    return tuple(model() for model in ALERT_RULES)


class AlertsConfig(Model):
    notify: tuple[str, ...] = Field(
        default=(),
        description="the regional team's addresses: every alert goes to them",
        examples=[["exploitation@grades.example"]],
    )
    establishment_contacts: bool = Field(
        default=True,
        description="also mail an establishment's contacts (identity.contacts) the alerts of "
        "its own flows (its listeners, the destinations its messages go to, its rejects)",
    )
    every: Duration = Field(default=5.0, gt=0, description="how often the rules are evaluated")
    group_wait: Duration = Field(
        default=30.0,
        ge=0,
        description="a recipient's alerts within this long after the first go in one mail",
        examples=["30s"],
    )
    repeat_every: Duration = Field(
        default=4 * 3600.0,
        gt=0,
        description="a still-firing alert is mailed again at most this often",
        examples=["4h"],
    )
    rules: tuple[AlertRule, ...] = Field(
        default_factory=lambda: tuple(default_rules()),  # type: ignore[arg-type]
        description="the rules; unset: every rule with its default thresholds",
    )
