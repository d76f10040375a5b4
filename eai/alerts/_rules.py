"""What each alert rule is called in the mails, what it inhibits, and the command to look.

Touches: nothing.

One :class:`RuleText` per rule name (a registry, not an if-chain): the French title
a mail gives it, the command a support engineer runs to investigate a scope, and the
rules it inhibits on the same scope (a destination that is down causes its queue's age
and its dead letters: one alert, not three).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RULES", "RuleText", "scope_name"]


def scope_name(scope: str) -> str:
    """``destination:dcc@node-2`` -> ``dcc``."""
    return scope.partition(":")[2].partition("@")[0] or scope


@dataclass(frozen=True, slots=True)
class RuleText:
    title: Callable[[str], str]
    """The scope -> the alert's name in a mail (French)."""
    investigate: Callable[[str], str]
    """The scope -> the exact command to look into it."""
    inhibits: tuple[str, ...] = ()
    resolved: Callable[[str], str] | None = None
    """The scope -> the name of its "resolved" mail, when not "<title> (résolue)"."""

    def resolved_title(self, scope: str) -> str:
        return self.resolved(scope) if self.resolved is not None else self.title(scope)


def _queue(scope: str) -> str:
    return "eai queue list"


RULES: dict[str, RuleText] = {
    "destination_failing": RuleText(
        lambda s: f"destination {scope_name(s)} en échec",
        lambda s: "eai queue list ; eai messages list --status processed --since 1h",
        inhibits=("queue_age", "dead_letters"),
    ),
    "queue_age": RuleText(
        lambda s: f"file d'attente de {scope_name(s)} en retard",
        _queue,
    ),
    "dead_letters": RuleText(
        lambda s: f"envois abandonnés vers {scope_name(s)}",
        lambda s: "eai queue list ; eai messages list --status processed --since 1h",
    ),
    "rejected_rate": RuleText(
        lambda s: f"messages rejetés de {scope_name(s)}",
        lambda s: "eai messages list --status rejected --since 1h",
    ),
    "listener_down": RuleText(
        lambda s: f"point d'entrée {scope_name(s)} fermé",
        lambda s: f"eai messages list --listener {scope_name(s)} --since 1h",
    ),
    "journal_failing": RuleText(
        lambda s: "écriture du journal en échec (messages refusés AE)",
        lambda s: "eai messages list --since 10m",
    ),
    "disk_usage": RuleText(
        lambda s: f"disque presque plein ({scope_name(s)})",
        lambda s: "eai queue list",
    ),
    "identity_server": RuleText(
        lambda s: "serveur régional d'identités injoignable",
        lambda s: "eai queue list   (colonne HELD : envois en attente d'identité)",
        resolved=lambda s: "serveur régional d'identités de nouveau joignable",
    ),
    "cert_expiry": RuleText(
        lambda s: f"certificat de {scope_name(s)} bientôt expiré",
        lambda s: "eai check",
    ),
    "peer_cert_rejected": RuleText(
        lambda s: f"certificat d'un correspondant refusé ({scope_name(s)})",
        lambda s: (
            f"eai messages list --listener {scope_name(s)} --since 1h"
            if s.startswith("listener:")
            else "eai queue list ; eai messages list --status processed --since 1h"
        ),
    ),
}
