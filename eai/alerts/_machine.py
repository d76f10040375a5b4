"""The alert state machine: ok -> pending -> firing -> resolved, and which mails it owes.

Touches: nothing (pure: rows and observations in, changed rows and mails owed out).

Per rule and scope, at each evaluation:

- condition true: ``ok``/``resolved`` -> ``pending`` (since now); ``pending`` -> ``firing``
  once it held for the rule's ``for``; ``firing`` stays (its value is updated);
- condition false: ``pending`` -> ``ok`` (nothing was mailed); ``firing`` -> ``resolved``.

Mails (storm control): a firing alert owes one "firing" mail, then one "repeat" mail at
most every ``repeat_every`` while it fires, and one "resolved" mail when it resolves if
its firing was mailed. A silenced alert, or one inhibited by a firing alert of the same
scope (a destination down inhibits its queue age and dead letters), owes nothing while
so; it is mailed as firing when the silence ends if it still fires, and an alert never
mailed as firing is never mailed as resolved. An alert that fired while its inhibitor
fired stays attributed to it until it resolves (the queue that drains after the
destination came back is not a new incident). Each mail owed is one row per recipient.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from eai.alerts._rules import RULES
from eai.store import AlertChanges, AlertNotice, AlertRow, Silence

__all__ = ["Observation", "Policy", "decide", "duration_fr"]


@dataclass(frozen=True, slots=True)
class Observation:
    """What one rule measured on one scope."""

    rule: str
    scope: str
    bad: bool
    value: str  # French, no patient data: "200 message(s) en attente ; aucun envoi..."
    facilities: tuple[str, ...] = ()
    owner: str = ""  # the node, for a node-local measure


@dataclass(frozen=True, slots=True)
class Policy:
    repeat_every: float
    hold_for: Mapping[str, float]  # rule -> its ``for``
    recipients: Callable[[str, tuple[str, ...]], tuple[str, ...]]
    """(rule, facilities) -> the addresses its mails go to."""


def _next(row: AlertRow | None, obs: Observation, hold: float, now: datetime) -> AlertRow:
    if obs.bad:
        if row is None or row.state in ("ok", "resolved"):
            base = row or AlertRow(obs.rule, obs.scope, "ok", now)
            row = replace(base, state="pending", since=now, notified=False, resolved_at=None)
        if row.state == "pending" and (now - row.since).total_seconds() >= hold:
            row = replace(row, state="firing", since=now, fired_at=now)
    elif row is not None and row.state == "pending":
        row = replace(row, state="ok", since=now)
    elif row is not None and row.state == "firing":
        row = replace(row, state="resolved", since=now, resolved_at=now)
    elif row is None:
        row = AlertRow(obs.rule, obs.scope, "ok", now)
    else:  # still ok, or resolved: the last value shown stays (no write each evaluation)
        return replace(row, facilities=obs.facilities, owner=obs.owner)
    return replace(row, value=obs.value, facilities=obs.facilities, owner=obs.owner)


def _mail(
    row: AlertRow, before: AlertRow | None, suppressed: bool, now: datetime, policy: Policy
) -> tuple[AlertRow, str | None]:
    """The row after its mail decision, and the kind of mail owed (or None)."""
    if suppressed:
        return row, None
    if row.state == "firing":
        if not row.notified:
            return replace(row, notified=True, last_mail_at=now, mails=row.mails + 1), "firing"
        last = row.last_mail_at or now
        if now - last >= timedelta(seconds=policy.repeat_every):
            return replace(row, last_mail_at=now, mails=row.mails + 1), "repeat"
    if row.state == "resolved" and before is not None and before.state == "firing":
        if row.notified:
            return replace(row, notified=False, last_mail_at=now, mails=row.mails + 1), "resolved"
    return row, None


def decide(
    rows: Mapping[tuple[str, str], AlertRow],
    silences: Iterable[Silence],
    observations: Iterable[Observation],
    now: datetime,
    policy: Policy,
) -> AlertChanges:
    """The rows that change and the mails owed, for this evaluation's observations."""
    silences = list(silences)
    moved: dict[tuple[str, str], AlertRow] = {}
    for obs in observations:
        key = (obs.rule, obs.scope)
        moved[key] = _next(rows.get(key), obs, policy.hold_for.get(obs.rule, 0.0), now)
    current = {**rows, **moved}
    changes = AlertChanges()
    for key, row in moved.items():
        before = rows.get(key)
        inhibited = any(
            _inhibits(other, row)
            for rule in _INHIBITED_BY.get(row.rule, ())
            if (other := current.get((rule, row.scope))) is not None
        )
        silenced = any(s.matches(row.rule, row.scope) for s in silences)
        row, kind = _mail(row, before, inhibited or silenced, now, policy)
        if before is None or _differs(before, row):
            changes.rows.append(row)
        if kind is not None:
            detail = _detail(row, kind, now)
            changes.notices.extend(
                AlertNotice(row.rule, row.scope, kind, to, detail)
                for to in policy.recipients(row.rule, row.facilities)
            )
    return changes


_INHIBITED_BY: dict[str, tuple[str, ...]] = {}
for _name, _text in RULES.items():
    for _target in _text.inhibits:
        _INHIBITED_BY[_target] = (*_INHIBITED_BY.get(_target, ()), _name)


def _inhibits(cause: AlertRow, row: AlertRow) -> bool:
    """``cause`` fires now, or fired while ``row`` did: ``row``'s firing is attributed to
    it till ``row`` resolves (a drained queue's age is not a second incident)."""
    if cause.state == "firing":
        return True
    return (
        row.fired_at is not None
        and cause.resolved_at is not None
        and cause.resolved_at >= row.fired_at
        and not row.notified
    )


def duration_fr(seconds: float) -> str:
    """``75`` -> ``1 min 15 s``; ``90000`` -> ``1 j 1 h``."""
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    parts = [(days, "j"), (hours, "h"), (minutes, "min"), (s, "s")]
    shown = [f"{n} {unit}" for n, unit in parts if n][:2]
    return " ".join(shown) or "0 s"


def _detail(row: AlertRow, kind: str, now: datetime) -> str:
    lasted = duration_fr((now - (row.fired_at or now)).total_seconds())
    if kind == "repeat":
        return f"{row.value} ; toujours en cours depuis {lasted} (rappel n° {row.mails - 1})"
    if kind == "resolved":
        return f"{row.value} ; résolue après {lasted}"
    return row.value


def _differs(a: AlertRow, b: AlertRow) -> bool:
    return replace(a, updated_at=None) != replace(b, updated_at=None)
