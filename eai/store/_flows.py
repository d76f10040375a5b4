"""The console's 24 h sparklines: messages and errors per 15-minute interval, per flow.

Touches: DB (short reads; a short write of the intervals it rolls up).

Per listener: messages received in the interval, errors = those rejected. Per route and
per destination: the deliveries of the messages received in the interval, errors = those
that failed at least once (dead, retrying, or delivered after more than one attempt).

An interval is rolled up once, :data:`SETTLE` after it ended, into ``flow_buckets`` (by
index ranges: ``ix_messages_received_at``, then ``ix_deliveries_message``) by
:func:`roll_up_flows`, which the console runs every minute on a thread of its own; the
``eai_meta`` row ``flow_rollup_upto`` says up to when. A request then reads the stored
rows of the last 24 h (the table's primary key) and counts only the intervals not yet
rolled up (at most ``BUCKET + SETTLE`` of the journal) live: its cost does not grow with
the journal, nor with a day's traffic. The rollup's counts are those of the moment it
ran (a delivery that fails hours later is not added to its interval). Several consoles
(engine nodes) may race to roll up: the cursor moves by a conditional update, and the
loser's transaction is rolled back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    case,
    delete,
    func,
    insert,
    literal_column,
    select,
)
from sqlalchemy import update as sql_update
from sqlalchemy.exc import IntegrityError, OperationalError

from eai.store._journal import utcnow
from eai.store._schema import deliveries, flow_buckets, messages, meta

__all__ = ["BUCKET", "BUCKETS", "FlowSeries", "flow_series", "roll_up_flows"]

BUCKET = timedelta(minutes=15)
BUCKETS = 96
"""Intervals shown: 24 h."""
SETTLE = timedelta(minutes=5)
"""An interval is rolled up this long after it ended (its messages processed by then)."""
KEEP = timedelta(days=2)
"""Rolled-up intervals older than this are deleted when the next ones are written."""
CURSOR = "flow_rollup_upto"
_FMT = "%Y-%m-%dT%H:%M:%S"
_EPOCH = datetime(2000, 1, 1)


@dataclass(frozen=True, slots=True)
class FlowSeries:
    """One flow's intervals, oldest first, from ``start`` (each :data:`BUCKET` long)."""

    kind: str  # listener | route | destination
    name: str
    start: datetime
    totals: tuple[int, ...]
    errors: tuple[int, ...]


Counts = dict[tuple[datetime, str, str], tuple[int, int]]


def floor(at: datetime) -> datetime:
    """The start of the interval holding ``at``."""
    return at - (at - _EPOCH) % BUCKET


def _plain(column: ColumnElement[str]) -> ColumnElement[str]:
    """``column || ''``: grouped by it, SQLite would otherwise walk the whole index that
    gives that order instead of the interval's range (see ``_search._no_index``)."""
    return column.concat(literal_column("''"))


def _count(conn: Connection, lo: datetime, hi: datetime) -> Counts:
    """The counts of the interval [lo, hi) (one interval), by index ranges."""
    m, d = messages.c, deliveries.c
    out: Counts = {}
    rows = conn.execute(
        select(
            _plain(m.listener), func.count(), func.sum(case((m.status == "rejected", 1), else_=0))
        )
        .where(m.received_at >= lo, m.received_at < hi)
        .group_by(_plain(m.listener))
    ).all()
    for name, n, bad in rows:
        out[(lo, "listener", name)] = (n, int(bad or 0))
    failed = case((d.status.in_(("dead", "retrying")), 1), (d.attempts > 1, 1), else_=0)
    rows = conn.execute(
        select(_plain(d.destination), _plain(d.route), func.count(), func.sum(failed))
        .join(messages, m.id == d.message_id)
        .where(m.received_at >= lo, m.received_at < hi)
        .group_by(_plain(d.destination), _plain(d.route))
    ).all()
    for dest, route, n, bad in rows:
        for key in ((lo, "destination", dest), (lo, "route", route)):
            if key[2]:
                t, e = out.get(key, (0, 0))
                out[key] = (t + n, e + int(bad or 0))
    return out


def _counts(conn: Connection, lo: datetime, hi: datetime) -> Counts:
    out: Counts = {}
    at = lo
    while at < hi:
        out.update(_count(conn, at, at + BUCKET))
        at += BUCKET
    return out


def _roll_up(engine: Engine, cursor: str | None, lo: datetime, hi: datetime, now: datetime) -> None:
    """Writes the intervals [lo, hi) and moves the cursor to ``hi``, unless another node
    moved it first (then nothing is written)."""
    with engine.connect() as conn:
        counts = _counts(conn, lo, hi)  # read first: no write lock while counting
    rows = [
        {"bucket_start": b, "kind": k, "name": n, "total": t, "errors": e}
        for (b, k, n), (t, e) in counts.items()
    ]
    try:
        with engine.begin() as conn:
            if cursor is None:
                conn.execute(insert(meta).values(key=CURSOR, value=hi.strftime(_FMT)))
            else:
                moved = conn.execute(
                    sql_update(meta)
                    .where(meta.c.key == CURSOR, meta.c.value == cursor)
                    .values(value=hi.strftime(_FMT))
                )
                if moved.rowcount != 1:
                    raise _Lost
            conn.execute(delete(flow_buckets).where(flow_buckets.c.bucket_start >= lo))
            if rows:
                conn.execute(insert(flow_buckets), rows)
            conn.execute(delete(flow_buckets).where(flow_buckets.c.bucket_start < now - KEEP))
    except (_Lost, IntegrityError, OperationalError):
        pass  # another console rolled them up (or the journal is busy: next time)


class _Lost(Exception):
    pass


def _cursor(engine: Engine) -> tuple[str | None, datetime | None]:
    with engine.connect() as conn:
        value = conn.execute(select(meta.c.value).where(meta.c.key == CURSOR)).scalar()
    return value, datetime.strptime(value, _FMT) if value else None


def roll_up_flows(engine: Engine, now: datetime | None = None) -> datetime | None:
    """Rolls up the intervals of the last 24 h that are over (by :data:`SETTLE`) and not
    yet rolled up; returns up to when they are. The console runs it every minute on a
    thread of its own, so that a page seldom does it; :func:`flow_series` runs it too."""
    now = now or utcnow()
    start = floor(now) + BUCKET - BUCKET * BUCKETS
    cursor, upto = _cursor(engine)
    settled = floor(now - SETTLE)
    lo = max(upto or start, start)
    if lo < settled:
        _roll_up(engine, cursor, lo, settled, now)
        cursor, upto = _cursor(engine)
    return upto


def flow_series(engine: Engine, now: datetime | None = None) -> dict[tuple[str, str], FlowSeries]:
    """(kind, name) -> its last 24 h, the current interval last. Only flows with
    messages in the window are present."""
    now = now or utcnow()
    end = floor(now) + BUCKET
    start = end - BUCKET * BUCKETS
    upto = roll_up_flows(engine, now)
    live_from = max(upto or start, start)
    counts: Counts = {}
    with engine.connect() as conn:
        for r in conn.execute(
            select(flow_buckets).where(
                flow_buckets.c.bucket_start >= start, flow_buckets.c.bucket_start < live_from
            )
        ):
            counts[(r.bucket_start, r.kind, r.name)] = (r.total, r.errors)
        counts.update(_counts(conn, live_from, end))
    series: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
    for (b, kind, name), (t, e) in counts.items():
        i = int((b - start) / BUCKET)
        if not 0 <= i < BUCKETS:
            continue
        totals, errors = series.setdefault((kind, name), ([0] * BUCKETS, [0] * BUCKETS))
        totals[i] += t
        errors[i] += e
    return {
        key: FlowSeries(key[0], key[1], start, tuple(t), tuple(e)) for key, (t, e) in series.items()
    }
