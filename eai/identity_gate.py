"""Checks the patient identity a message carries: the regional charter, and whether
it is qualified enough for destinations that demand it.

Touches: files (reads the charter files once per set of paths).

Severities act after the acknowledgement (the ACK only says the message is
safe): ``reject`` routes the message nowhere; ``hold`` and an unqualified
identity hold its deliveries to destinations with
``require_qualified_identity``; ``warn`` only reports.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from eai import hl7
from eai.config import Config, ListenerConfig
from eai.content import ParsedContent
from identity.charter import CheckContext, Rule, evaluate_charter, load_charter
from identity.patient import PatientIdentity, identity_from_hl7
from identity.pdqm import IdentityServerUnavailable
from identity.reconcile import Reconciliation
from identity.status import DEFAULT_TABLE, IdentityStatus

__all__ = [
    "SERVER_UNAVAILABLE",
    "UNQUALIFIED_RULE",
    "IdentityVerdict",
    "Reconciled",
    "identity_of",
    "identity_verdict",
]

SERVER_UNAVAILABLE = "identity server unavailable"
"""The hold reason of a delivery whose identity could not be reconciled yet: the
pipeline asks the server again every ``identity.server.retry_every``."""

Reconciled = Reconciliation | IdentityServerUnavailable
"""What the identity server said of a message's identity, or that it could not be asked."""

UNQUALIFIED_RULE = "IDENTITE-NON-QUALIFIEE"
_UNQUALIFIED_TEXT = (
    "L'identité n'est pas qualifiée (statut {status}) : les envois vers le DMP, MSSanté et "
    "les destinations qui exigent une identité qualifiée sont mis en attente. Qualifiez "
    "l'identité (INS récupéré par INSi et pièce d'identité vérifiée, PID-32 = VALI avec "
    "l'INS en PID-3) puis renvoyez un message de mise à jour (A31/A08)."
)


@functools.lru_cache(maxsize=8)
def _rules(paths: tuple[Path, ...]) -> tuple[Rule, ...]:
    return tuple(load_charter(paths))


def _status_table(
    listener: ListenerConfig | None,
) -> dict[tuple[str, bool], IdentityStatus] | None:
    if listener is None or not listener.identity_status:
        return None
    table = dict(DEFAULT_TABLE)
    for code, o in listener.identity_status.items():
        table[(code.strip().upper(), True)] = o.with_ins
        table[(code.strip().upper(), False)] = o.without_ins
    return table


def identity_of(
    content: ParsedContent, listener: ListenerConfig | None = None
) -> PatientIdentity | None:
    """The identity a message states, if it carries one (HL7 v2 with a PID today)."""
    msg = content.routable
    if isinstance(msg, hl7.Hl7Message) and msg.segment("PID") is not None:
        return identity_from_hl7(msg, _status_table(listener))
    return None


@dataclass(frozen=True, slots=True)
class IdentityVerdict:
    facility: str
    qualified: bool
    anomalies: tuple[tuple[str, str, str], ...]
    """(rule, severity, explanation)"""
    identity: PatientIdentity | None = None
    server_unavailable: bool = False
    """The identity server could not be asked: strict destinations wait for it."""

    @property
    def reject_reason(self) -> str:
        rules = [r for r, sev, _ in self.anomalies if sev == "reject"]
        return f"identity charter: {', '.join(rules)}" if rules else ""

    @property
    def hold_reason(self) -> str:
        rules = [r for r, sev, _ in self.anomalies if sev == "hold"]
        if rules:
            return f"identity held: {', '.join(rules)}"
        return SERVER_UNAVAILABLE if self.server_unavailable else ""


def identity_verdict(
    config: Config,
    listener: ListenerConfig | None,
    content: ParsedContent,
    reconciled: Reconciled | None = None,
) -> IdentityVerdict | None:
    """``None`` when the message carries no patient identity.

    ``reconciled``: what the regional identity server said (its anomalies join the
    charter's; an identity it holds is not qualified) or that it could not be asked
    (not qualified until it answers; no anomaly: the establishment has nothing to fix).
    """
    ident = identity_of(content, listener)
    if ident is None:
        return None
    test_feed = bool(listener is not None and listener.test_feed)
    found = evaluate_charter(
        _rules(tuple(config.identity.charter)), ident, CheckContext(test_feed=test_feed)
    )
    anomalies: list[tuple[str, str, str]] = [(a.rule, a.severity, a.message) for a in found]
    if isinstance(reconciled, Reconciliation):
        anomalies.extend(reconciled.anomalies)
    unavailable = isinstance(reconciled, IdentityServerUnavailable)
    holds = any(sev in ("hold", "reject") for _, sev, _ in anomalies)
    qualified = ident.status == "QUAL" and not holds and not unavailable
    needs_qualified = any(d.require_qualified_identity for d in config.destinations)
    if ident.status != "QUAL" and not holds and needs_qualified:
        anomalies.append((UNQUALIFIED_RULE, "hold", _UNQUALIFIED_TEXT.format(status=ident.status)))
    return IdentityVerdict(
        ident.facility, qualified, tuple(anomalies), ident, server_unavailable=unavailable
    )
