"""The alerts' rows: state per rule and scope, the mails owed per recipient, the silences.

Touches: DB (short transactions of its own; safe while the engine runs, and from several
engine nodes on one PostgreSQL: every write runs under one transaction-scoped advisory
lock, so two nodes never both move one alert nor both claim one mail).

The decisions (which state comes next, which mail is owed) are :mod:`eai.alerts`';
:func:`update_alerts` hands them the rows read under the lock and writes what they
return in the same transaction.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, and_, delete, insert, or_, select, text, update

from eai.errors import EaiError, NotFound
from eai.store._audit import AuditActor, AuditEntry, append
from eai.store._crypto import Cipher
from eai.store._journal import utcnow
from eai.store._schema import alert_notices, alert_silences, alert_state

__all__ = [
    "AlertChanges",
    "AlertNotice",
    "AlertRow",
    "ClaimedNotice",
    "Silence",
    "add_silence",
    "claim_notices",
    "end_silence",
    "finish_notices",
    "list_alerts",
    "list_silences",
    "update_alerts",
]

_ALERTS_LOCK = zlib.crc32(b"eai:alerts")
_KEEP_SENT = timedelta(days=30)
"""Mails sent are kept this long (what was sent to whom, for support), then deleted."""


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ALERTS_LOCK})


@dataclass(frozen=True, slots=True)
class AlertRow:
    """One rule on one scope: its state and what was mailed of it."""

    rule: str
    scope: str
    state: str  # ok | pending | firing | resolved
    since: datetime
    owner: str = ""
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    value: str = ""
    facilities: tuple[str, ...] = ()
    notified: bool = False  # a "firing" mail is owed a "resolved" one
    last_mail_at: datetime | None = None
    mails: int = 0
    updated_at: datetime | None = None

    def to_json(self) -> dict[str, object]:
        def iso(t: datetime | None) -> str | None:
            return None if t is None else t.isoformat(timespec="seconds") + "Z"

        return {
            "rule": self.rule,
            "scope": self.scope,
            "state": self.state,
            "since": iso(self.since),
            "fired_at": iso(self.fired_at),
            "resolved_at": iso(self.resolved_at),
            "value": self.value,
            "facilities": list(self.facilities),
            "last_mail_at": iso(self.last_mail_at),
            "mails": self.mails,
            "node": self.owner or None,
        }


@dataclass(frozen=True, slots=True)
class AlertNotice:
    """A mail owed to one recipient about one alert."""

    rule: str
    scope: str
    kind: str  # firing | repeat | resolved
    recipient: str
    detail: str


@dataclass(frozen=True, slots=True)
class ClaimedNotice:
    id: int
    rule: str
    scope: str
    kind: str
    recipient: str
    created_at: datetime
    detail: str


@dataclass(frozen=True, slots=True)
class Silence:
    id: int
    rule: str
    scope: str
    created_at: datetime
    ends_at: datetime
    author: str
    reason: str

    def matches(self, rule: str, scope: str) -> bool:
        """Same rule (or ``*``), and the same scope, every scope (``""``), or the scope
        of a node-local alert (``listener:adt`` matches ``listener:adt@node-2``)."""
        if self.rule not in ("*", rule):
            return False
        return self.scope in ("", scope) or scope.startswith(self.scope + "@")

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "rule": self.rule,
            "scope": self.scope or None,
            "created_at": self.created_at.isoformat(timespec="seconds") + "Z",
            "ends_at": self.ends_at.isoformat(timespec="seconds") + "Z",
            "author": self.author,
            "reason": self.reason,
        }


@dataclass(slots=True)
class AlertChanges:
    """What one evaluation decided: rows to write (new or changed) and mails owed."""

    rows: list[AlertRow] = field(default_factory=list)
    notices: list[AlertNotice] = field(default_factory=list)


def _row(r: object) -> AlertRow:
    m = r._mapping  # type: ignore[attr-defined]
    return AlertRow(
        rule=m["rule"],
        scope=m["scope"],
        state=m["state"],
        since=m["since"],
        owner=m["owner"],
        fired_at=m["fired_at"],
        resolved_at=m["resolved_at"],
        value=m["value"],
        facilities=tuple(f for f in m["facilities"].split(",") if f),
        notified=bool(m["notified"]),
        last_mail_at=m["last_mail_at"],
        mails=m["mails"],
        updated_at=m["updated_at"],
    )


def _silences(conn: Connection, now: datetime, expired: bool = False) -> list[Silence]:
    q = select(alert_silences).order_by(alert_silences.c.id)
    if not expired:
        q = q.where(alert_silences.c.ends_at > now)
    return [Silence(**r._mapping) for r in conn.execute(q)]


def update_alerts(
    engine: Engine,
    decide: Callable[[dict[tuple[str, str], AlertRow], list[Silence], datetime], AlertChanges],
) -> AlertChanges:
    """Reads every alert row and the active silences under the alerts lock, asks ``decide``
    what changes (given the time the lock was taken: it measures then, so two nodes never
    write a measure older than the other's), writes it, commits: one node at a time
    moves the alerts."""
    with engine.begin() as conn:
        _lock(conn)
        now = utcnow()
        rows = {(r.rule, r.scope): r for r in map(_row, conn.execute(select(alert_state)))}
        changes = decide(rows, _silences(conn, now), now)
        for new in changes.rows:
            values = {
                "owner": new.owner,
                "state": new.state,
                "since": new.since,
                "fired_at": new.fired_at,
                "resolved_at": new.resolved_at,
                "value": new.value,
                "facilities": ",".join(new.facilities),
                "notified": new.notified,
                "last_mail_at": new.last_mail_at,
                "mails": new.mails,
                "updated_at": now,
            }
            if (new.rule, new.scope) in rows:
                conn.execute(
                    update(alert_state)
                    .where(alert_state.c.rule == new.rule, alert_state.c.scope == new.scope)
                    .values(**values)
                )
            else:
                conn.execute(insert(alert_state).values(rule=new.rule, scope=new.scope, **values))
        if changes.notices:
            conn.execute(
                insert(alert_notices),
                [
                    {
                        "rule": n.rule,
                        "scope": n.scope,
                        "kind": n.kind,
                        "recipient": n.recipient,
                        "created_at": now,
                        "detail": n.detail,
                    }
                    for n in changes.notices
                ],
            )
    return changes


def claim_notices(
    engine: Engine, owner: str, now: datetime, group_wait: float, lease: float
) -> dict[str, list[ClaimedNotice]]:
    """The unsent mails of each recipient whose oldest one waited ``group_wait``, claimed
    for ``lease`` seconds by ``owner`` (no other node takes them meanwhile). Mails sent
    more than 30 days ago are deleted on the way."""
    c = alert_notices.c
    with engine.begin() as conn:
        _lock(conn)
        conn.execute(delete(alert_notices).where(c.sent_at < now - _KEEP_SENT))
        rows = conn.execute(
            select(c.id, c.rule, c.scope, c.kind, c.recipient, c.created_at, c.detail)
            .where(c.sent_at.is_(None), or_(c.claim_until.is_(None), c.claim_until < now))
            .order_by(c.id)
        ).all()
        per: dict[str, list[ClaimedNotice]] = {}
        for r in rows:
            per.setdefault(r.recipient, []).append(ClaimedNotice(*r))
        ready = {
            to: ns
            for to, ns in per.items()
            if ns[0].created_at + timedelta(seconds=group_wait) <= now
        }
        ids = [n.id for ns in ready.values() for n in ns]
        if ids:
            conn.execute(
                update(alert_notices)
                .where(c.id.in_(ids))
                .values(claim_owner=owner, claim_until=now + timedelta(seconds=lease))
            )
    return ready


def finish_notices(
    engine: Engine, ids: Sequence[int], owner: str, *, sent: bool, retry_at: datetime
) -> None:
    """Marks claimed mails sent; or, when sending failed, leaves them unsent until
    ``retry_at``."""
    c = alert_notices.c
    values = {"sent_at": utcnow()} if sent else {"claim_until": retry_at}
    with engine.begin() as conn:
        conn.execute(
            update(alert_notices)
            .where(and_(c.id.in_(list(ids)), c.claim_owner == owner, c.sent_at.is_(None)))
            .values(**values)
        )


def add_silence(
    engine: Engine,
    rule: str,
    scope: str,
    ends_at: datetime,
    author: str,
    reason: str,
    record: Callable[[Connection, Silence], object],
) -> Silence:
    """Records a silence and, in the same transaction, what ``record`` writes of it (the
    audit trail's record: :func:`eai.audit.record` with the caller's connection), so a
    silence never exists unaudited."""
    now = utcnow()
    with engine.begin() as conn:
        sid = conn.execute(
            insert(alert_silences)
            .values(
                rule=rule,
                scope=scope,
                created_at=now,
                ends_at=ends_at,
                author=author,
                reason=reason,
            )
            .returning(alert_silences.c.id)
        ).scalar_one()
        silence = Silence(sid, rule, scope, now, ends_at, author, reason)
        record(conn, silence)
    return silence


def end_silence(engine: Engine, cipher: Cipher, silence_id: int, actor: AuditActor) -> Silence:
    """Ends an active silence now (``eai alerts unsilence``, the console's "End now") and
    writes the ``unsilence`` audit record of ``actor`` in the same transaction. The
    alerts' next evaluation mails again. Raises :class:`NotFound` for an unknown id,
    :class:`EaiError` for a silence already over."""
    now = utcnow()
    c = alert_silences.c
    with engine.begin() as conn:
        row = conn.execute(select(alert_silences).where(c.id == silence_id)).first()
        if row is None:
            raise NotFound(f"no silence {silence_id}")
        silence = Silence(**row._mapping)
        ended = conn.execute(
            update(alert_silences).where(c.id == silence_id, c.ends_at > now).values(ends_at=now)
        ).rowcount
        if not ended:
            raise EaiError(
                f"silence {silence_id} is already over "
                f"(it ended {silence.ends_at:%Y-%m-%d %H:%M:%S} UTC)"
            )
        entry = AuditEntry(
            "unsilence",
            f"{silence.rule} {silence.scope or '*'}",
            detail=f"silence {silence_id} ended before {silence.ends_at:%Y-%m-%dT%H:%M:%S}Z "
            f"(set by {silence.author}: {silence.reason})",
        )
        append(conn, cipher, actor, entry, now)
    return replace(silence, ends_at=now)


def list_alerts(engine: Engine) -> list[AlertRow]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(alert_state).order_by(alert_state.c.rule, alert_state.c.scope)
        ).all()
    return [_row(r) for r in rows]


def list_silences(engine: Engine, *, expired: bool = False) -> list[Silence]:
    with engine.connect() as conn:
        return _silences(conn, utcnow(), expired)
