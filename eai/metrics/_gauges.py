"""The journal's gauges: queue depth and age, dead letters, backlog, read by a refresher thread.

Touches: DB (reads only, on the refresher thread's own connection).

A scrape never waits on the database: :class:`JournalGauges` serves the last
:class:`Snapshot`, which its refresher thread (``eai-metrics-gauges``) reads every
``metrics.gauge_refresh`` (default 5 s) and at once after a reload. The counts grow with
the rows waiting (a destination down for a day has a million of them), the scrape's cost
does not. The ages are computed at the scrape from the heads' times (a stuck queue ages
between refreshes); ``eai_metrics_gauges_age_seconds`` says how old the counts are, and
``eai_metrics_gauges_stale`` is 1 while the last refresh failed (the old values are kept).

Two statements per refresh, each an index search, never a table scan
(``bench/metrics_scrape.py`` prints the plans, ``tests/integration/
test_metrics_query_plans.py`` checks them on SQLite and PostgreSQL):

- *counts*: one ``count(*)`` per (destination, status) over ``ix_deliveries_queue``
  (covering: the rows themselves are not read), the ``received`` messages over
  ``ix_messages_status_id``, the paused destinations (a row per destination) and the
  firing alerts per rule (``alert_state``: a row per rule and scope);
- *heads*: the first row of each (destination, pending|retrying) in
  ``ix_deliveries_queue`` order and the oldest ``received`` message, for their times.

A delivered row is never read, so the cost follows what waits, not what the journal
holds. One ``count`` per pair, joined by ``UNION ALL``, costs SQLite less than half of
one ``GROUP BY`` over both ``IN`` lists (which it runs as one merged range).
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, Executable, func, literal, select, union_all

from eai.store.schema import alert_state, deliveries, destination_state, messages

__all__ = ["QUEUE_STATUSES", "JournalGauges", "Snapshot", "read_journal", "scrape_statements"]

log = logging.getLogger(__name__)

QUEUE_STATUSES = ("pending", "retrying", "held", "dead")
"""Delivery statuses a row waits in (``dead``: until an operator resends it)."""

_AGED = ("pending", "retrying")
"""Statuses whose oldest row gives the queue's age (held rows wait for an identity)."""

_BACKLOG = "received"
"""The pseudo-status of the pipeline's backlog row (destination ``""``)."""
_PAUSED = "paused"
_FIRING = "alert:firing"


def _head(destination: str, status: str) -> Any:
    return (
        select(deliveries.c.created_at)
        .where(deliveries.c.destination == destination, deliveries.c.status == status)
        .order_by(deliveries.c.message_id, deliveries.c.id)
        .limit(1)
        .scalar_subquery()
    )


_RECEIVED_HEAD = (
    select(messages.c.received_at)
    .where(messages.c.status == "received")
    .order_by(messages.c.id)
    .limit(1)
    .scalar_subquery()
)


@functools.lru_cache(maxsize=8)
def scrape_statements(destinations: tuple[str, ...]) -> dict[str, Executable]:
    """The two statements of a refresh for ``destinations`` (compiled once per set)."""
    counts: list[Any] = [
        select(literal(d), literal(s), func.count()).where(
            deliveries.c.destination == d, deliveries.c.status == s
        )
        for d in destinations
        for s in QUEUE_STATUSES
    ]
    counts.append(
        select(literal(""), literal(_BACKLOG), func.count()).where(messages.c.status == "received")
    )
    counts.append(
        select(destination_state.c.name, literal(_PAUSED), literal(1)).where(
            destination_state.c.paused.is_(True)
        )
    )
    counts.append(
        select(alert_state.c.rule, literal(_FIRING), func.count())
        .where(alert_state.c.state == "firing")
        .group_by(alert_state.c.rule)
    )
    heads: list[Any] = [select(literal(d), *(_head(d, s) for s in _AGED)) for d in destinations]
    heads.append(select(literal(""), _RECEIVED_HEAD, _RECEIVED_HEAD))
    return {"counts": union_all(*counts), "heads": union_all(*heads)}


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one refresh read: counts per (name, status) and heads per destination."""

    destinations: tuple[str, ...]
    rules: tuple[str, ...]
    counts: dict[tuple[str, str], int]
    heads: dict[str, tuple[Any, Any]]


def read_journal(engine: Engine, destinations: Sequence[str], rules: Sequence[str]) -> Snapshot:
    """Runs the two statements of :func:`scrape_statements` (one connection)."""
    names = tuple(destinations)
    statements = scrape_statements(names)
    with engine.connect() as conn:
        counts = {(r[0], r[1]): int(r[2]) for r in conn.execute(statements["counts"])}
        heads = {r[0]: (r[1], r[2]) for r in conn.execute(statements["heads"])}
    return Snapshot(names, tuple(rules), counts, heads)


def _age(now: datetime, at: datetime | None) -> float:
    return max(0.0, (now - at).total_seconds()) if at is not None else 0.0


class JournalGauges(Collector):
    """Serves the journal's gauges from the last refresh; :meth:`start` runs the refresher
    thread (:meth:`refresh` every ``interval`` seconds) until :meth:`stop`."""

    def __init__(
        self,
        engine: Engine,
        destinations: Sequence[str],
        clock: Callable[[], datetime],
        rules: Sequence[str] = (),
        interval: float = 5.0,
    ) -> None:
        self._engine = engine
        self._destinations = tuple(destinations)
        self._rules = tuple(rules)
        self._clock = clock
        self._interval = interval
        self._snapshot: Snapshot | None = None
        self._taken = 0.0  # monotonic time of the last successful refresh
        self._stale = True
        self._failures = 0
        self._duration = 0.0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def reconfigure(self, destinations: Sequence[str], rules: Sequence[str]) -> None:
        """After a reload: the destinations and alert rules of the new config (read by
        a refresh that starts at once)."""
        self._destinations = tuple(destinations)
        self._rules = tuple(rules)
        self._wake.set()

    def refresh(self) -> bool:
        """Reads the journal once; keeps the old values (marked stale) when it fails."""
        started = time.monotonic()
        try:
            snapshot = read_journal(self._engine, self._destinations, self._rules)
        except Exception as exc:  # noqa: BLE001 - any failure: keep the last values
            self._stale = True
            self._failures += 1
            log.warning("metrics: journal gauges not refreshed (%s)", type(exc).__name__)
            return False
        finally:
            self._duration = time.monotonic() - started
        self._snapshot, self._taken, self._stale = snapshot, time.monotonic(), False
        return True

    def start(self) -> None:
        """Starts the refresher thread; its first refresh is at once (until it ends, a
        scrape has no journal gauges and ``eai_metrics_gauges_stale`` is 1). The caller
        never waits on the database: the engine starts this from its event loop."""
        self._stopping.clear()
        self._wake.set()
        self._thread = threading.Thread(target=self._run, name="eai-metrics-gauges", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Blocks until the refresher is out (at most one refresh; a refresh hung on
        the database is left behind after 10 s: a daemon thread, its result unused)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            if not self._stopping.is_set():
                self.refresh()

    def _freshness(self) -> Iterator[Metric]:
        age = time.monotonic() - self._taken if self._snapshot is not None else math.nan
        yield GaugeMetricFamily(
            "eai_metrics_gauges_age_seconds",
            "time since the journal's gauges were last read (NaN: never)",
            value=age,
        )
        yield GaugeMetricFamily(
            "eai_metrics_gauges_stale",
            "1 while the last refresh of the journal's gauges failed (old values served)",
            value=1.0 if self._stale else 0.0,
        )
        yield GaugeMetricFamily(
            "eai_metrics_gauges_refresh_duration_seconds",
            "wall time of the last refresh of the journal's gauges",
            value=self._duration,
        )
        yield CounterMetricFamily(
            "eai_metrics_gauges_refresh_failures",
            "refreshes of the journal's gauges that failed",
            value=self._failures,
        )

    def collect(self) -> Iterator[Metric]:
        yield from self._freshness()
        snap = self._snapshot
        if snap is not None:
            yield from _journal_families(snap, self._clock())


def _journal_families(snap: Snapshot, now: datetime) -> Iterator[Metric]:
    counts, heads = snap.counts, snap.heads
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
    for name in snap.destinations:
        for status in QUEUE_STATUSES[:-1]:
            depth.add_metric([name, status], counts.get((name, status), 0))
        dead.add_metric([name], counts.get((name, "dead"), 0))
        first = heads.get(name, (None, None))
        age.add_metric([name], max(_age(now, first[0]), _age(now, first[1])))
        paused.add_metric([name], 1.0 if (name, _PAUSED) in counts else 0.0)
    firing = GaugeMetricFamily(
        "eai_alerts_firing",
        "alerts firing, per rule (scopes of every node; see eai alerts list)",
        labels=["rule"],
    )
    found = {k[0] for k in counts if k[1] == _FIRING}
    for rule in sorted(set(snap.rules) | found):
        firing.add_metric([rule], counts.get((rule, _FIRING), 0))
    yield firing
    yield depth
    yield dead
    yield age
    yield paused
    yield GaugeMetricFamily(
        "eai_pipeline_backlog",
        "received messages not yet processed",
        value=counts.get(("", _BACKLOG), 0),
    )
    yield GaugeMetricFamily(
        "eai_pipeline_oldest_age_seconds",
        "age of the oldest received message not yet processed (0: none)",
        value=_age(now, heads.get("", (None, None))[0]),
    )
