"""The gauges read from the journal at each scrape: queue depth and age, dead letters, backlog.

Touches: DB (reads only, on the scraping thread's own connection).

Two statements per scrape, each an index search, never a table scan
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
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, Executable, func, literal, select, union_all

from eai.store.schema import alert_state, deliveries, destination_state, messages

__all__ = ["QUEUE_STATUSES", "JournalGauges", "scrape_statements"]

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
    """The two statements of a scrape for ``destinations`` (compiled once per set)."""
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


def _age(now: datetime, at: datetime | None) -> float:
    return max(0.0, (now - at).total_seconds()) if at is not None else 0.0


class JournalGauges(Collector):
    """Collects the journal's gauges for the configured destinations at each scrape."""

    def __init__(
        self,
        engine: Engine,
        destinations: Sequence[str],
        clock: Callable[[], datetime],
        rules: Sequence[str] = (),
    ) -> None:
        self._engine = engine
        self._destinations = tuple(destinations)
        self._rules = tuple(rules)
        self._clock = clock

    def reconfigure(self, destinations: Sequence[str], rules: Sequence[str]) -> None:
        """After a reload: the destinations and alert rules of the new config."""
        self._destinations = tuple(destinations)
        self._rules = tuple(rules)

    def collect(self) -> Iterator[Metric]:
        names = self._destinations
        statements = scrape_statements(names)
        with self._engine.connect() as conn:
            counts = {(r[0], r[1]): int(r[2]) for r in conn.execute(statements["counts"])}
            heads = {r[0]: (r[1], r[2]) for r in conn.execute(statements["heads"])}
        now = self._clock()
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
        for name in names:
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
        for rule in sorted(set(self._rules) | found):
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
