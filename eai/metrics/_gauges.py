"""The gauges read from the journal at each scrape: queue depth and age, dead letters, backlog.

Touches: DB (reads only, on the scraping thread's own connection).

Each query is an index range, never a table scan (``bench/metrics_scrape.py`` prints the
plans): depths and dead letters count ``ix_deliveries_queue`` entries
(destination, status) of the active rows only; the oldest queued row is the first
entry of that index for (destination, status), its age the row's ``created_at``; the
pipeline's backlog counts ``ix_messages_status_id`` entries of ``received`` messages.
A delivered row is never read, so the cost follows what waits, not what the journal
holds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import (
    BindParameter,
    Engine,
    Executable,
    Select,
    bindparam,
    func,
    literal,
    select,
    union_all,
)

from eai.store.schema import deliveries, destination_state, messages

__all__ = ["QUEUE_STATUSES", "JournalGauges", "queue_statements", "scrape_statements"]

QUEUE_STATUSES = ("pending", "retrying", "held", "dead")
"""Delivery statuses a row waits in (``dead``: until an operator resends it)."""

_AGED = ("pending", "retrying")
"""Statuses whose oldest row gives the queue's age (held rows wait for an identity)."""


def _head(destination: str, index: int, status: str) -> Select[tuple[datetime]]:
    return (
        select(deliveries.c.created_at)
        .where(
            deliveries.c.destination == bindparam(f"d{index}", destination),
            deliveries.c.status == status,
        )
        .order_by(deliveries.c.message_id, deliveries.c.id)
        .limit(1)
    )


@functools.lru_cache(maxsize=8)
def queue_statements(destinations: tuple[str, ...]) -> tuple[Executable, Executable]:
    """(depths, heads) for ``destinations``: rows per (destination, status), and the
    ``created_at`` of the first pending and first retrying row of each destination."""
    names: list[BindParameter[str]] = [bindparam(f"d{i}", d) for i, d in enumerate(destinations)]
    depths = (
        select(deliveries.c.destination, deliveries.c.status, func.count())
        .where(deliveries.c.destination.in_(names), deliveries.c.status.in_(QUEUE_STATUSES))
        .group_by(deliveries.c.destination, deliveries.c.status)
    )
    rows = [
        select(
            literal(d).label("destination"),
            *(_head(d, i, s).scalar_subquery().label(s) for s in _AGED),
        )
        for i, d in enumerate(destinations)
    ]
    heads: Executable = rows[0] if len(rows) == 1 else union_all(*rows)
    return depths, heads


_BACKLOG = select(func.count()).select_from(messages).where(messages.c.status == "received")
_BACKLOG_HEAD = (
    select(messages.c.received_at)
    .where(messages.c.status == "received")
    .order_by(messages.c.id)
    .limit(1)
)
_PAUSED = select(destination_state.c.name).where(destination_state.c.paused.is_(True))


def scrape_statements(destinations: tuple[str, ...]) -> dict[str, Executable]:
    """Every statement a scrape runs, by name (for the query-plan checks and the benchmark)."""
    found: dict[str, Executable] = {}
    if destinations:
        found["queue_depths"], found["queue_heads"] = queue_statements(destinations)
    found["backlog"] = _BACKLOG
    found["backlog_head"] = _BACKLOG_HEAD
    found["paused"] = _PAUSED
    return found


def _age(now: datetime, at: datetime | None) -> float:
    return max(0.0, (now - at).total_seconds()) if at is not None else 0.0


class JournalGauges(Collector):
    """Collects the journal's gauges for the configured destinations at each scrape."""

    def __init__(
        self, engine: Engine, destinations: Sequence[str], clock: Callable[[], datetime]
    ) -> None:
        self._engine = engine
        self._destinations = tuple(destinations)
        self._clock = clock

    def set_destinations(self, destinations: Sequence[str]) -> None:
        """After a reload: the destinations of the new config."""
        self._destinations = tuple(destinations)

    def collect(self) -> Iterator[Metric]:
        now = self._clock()
        names = self._destinations
        depth = GaugeMetricFamily(
            "eai_queue_depth",
            "outbox rows waiting per destination and status (pending, retrying, held)",
            labels=["destination", "status"],
        )
        dead = GaugeMetricFamily(
            "eai_dead_letters",
            "outbox rows dead-lettered and not resent, per destination",
            labels=["destination"],
        )
        age = GaugeMetricFamily(
            "eai_queue_oldest_age_seconds",
            "age of the first pending or retrying row of each destination's queue (0: empty)",
            labels=["destination"],
        )
        paused = GaugeMetricFamily(
            "eai_destination_paused", "1 while a destination is paused", labels=["destination"]
        )
        with self._engine.connect() as conn:
            counts: dict[tuple[str, str], int] = {}
            heads: dict[str, float] = {}
            if names:
                depths_q, heads_q = queue_statements(names)
                for row in conn.execute(depths_q):
                    counts[(row[0], row[1])] = int(row[2])
                for row in conn.execute(heads_q):
                    heads[row[0]] = max(_age(now, at) for at in row[1:])
            backlog = int(conn.execute(_BACKLOG).scalar_one())
            head = conn.execute(_BACKLOG_HEAD).scalar()
            stopped = set(conn.execute(_PAUSED).scalars())
        for name in names:
            for status in QUEUE_STATUSES[:-1]:
                depth.add_metric([name, status], counts.get((name, status), 0))
            dead.add_metric([name], counts.get((name, "dead"), 0))
            age.add_metric([name], heads.get(name, 0.0))
            paused.add_metric([name], 1.0 if name in stopped else 0.0)
        yield depth
        yield dead
        yield age
        yield paused
        yield GaugeMetricFamily(
            "eai_pipeline_backlog", "received messages not yet processed", value=backlog
        )
        yield GaugeMetricFamily(
            "eai_pipeline_oldest_age_seconds",
            "age of the oldest received message not yet processed (0: none)",
            value=_age(now, head),
        )
