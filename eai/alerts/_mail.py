"""One plain-text French mail for one recipient, listing the alerts owed to them.

Touches: nothing (builds the message; :func:`identity.notify.send_mail` sends it).

No patient data: an alert names a rule, a listener, destination or establishment, counts
and durations; and gives the exact ``eai`` command to investigate. No link.
"""

from __future__ import annotations

from collections.abc import Sequence
from email.message import EmailMessage

from eai.alerts._rules import RULES
from eai.store import ClaimedNotice

__all__ = ["build_alert_mail"]

_KIND = {"firing": "EN COURS", "repeat": "TOUJOURS EN COURS", "resolved": "RÉSOLUE"}


def _subject(notices: Sequence[ClaimedNotice]) -> str:
    if len(notices) == 1:
        n = notices[0]
        if n.kind == "resolved":
            return f"[eai] Résolue : {RULES[n.rule].resolved_title(n.scope)}"
        return f"[eai] Alerte : {RULES[n.rule].title(n.scope)}"
    firing = sum(n.kind != "resolved" for n in notices)
    resolved = len(notices) - firing
    counts = [f"{firing} en cours" if firing else "", f"{resolved} résolue(s)" if resolved else ""]
    names = sorted({RULES[n.rule].title(n.scope) for n in notices})
    return f"[eai] {len(notices)} alertes ({', '.join(c for c in counts if c)}) : " + "; ".join(
        names
    )


def build_alert_mail(
    recipient: str, notices: Sequence[ClaimedNotice], *, sender: str, node: str
) -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"] = _subject(notices)
    mail["From"] = sender
    mail["To"] = recipient
    lines = [
        "Bonjour,",
        "",
        "La plateforme régionale d'interopérabilité signale :",
        "",
    ]
    for n in notices:
        text = RULES[n.rule]
        lines += [
            f"* [{_KIND.get(n.kind, n.kind)}] {text.title(n.scope)} "
            f"(règle {n.rule}, {n.scope}, le {n.created_at:%d/%m/%Y à %H:%M:%S} UTC)",
            f"  {n.detail}",
            f"  Pour examiner : {text.investigate(n.scope)}",
            "",
        ]
    lines += [
        "Pour suspendre une alerte le temps d'une intervention :",
        '  eai alerts silence RÈGLE --scope PORTÉE --for 2h --reason "..."',
        "État de toutes les alertes : eai alerts list",
        "",
        f"-- eai ({node}), plateforme régionale d'interopérabilité",
    ]
    mail.set_content("\n".join(lines))
    return mail
