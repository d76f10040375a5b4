"""A scrape reads the journal through its indexes only (SQLite and PostgreSQL), and its
gauges match the rows it counts."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from sqlalchemy import Engine, insert, text

from eai.metrics.endpoint import JournalGauges, scrape_statements
from eai.store import Store, utcnow
from eai.store.schema import alert_state, deliveries, messages

pytestmark = pytest.mark.integration

DESTINATIONS = ("dcc", "dmp", "emage")
DELIVERED = 20_000


def _fill(engine: Engine) -> None:
    """Many delivered rows (what a scrape must not read) and a few waiting ones."""
    now = utcnow()
    msg = {
        "listener": "adt",
        "received_at": now,
        "content_type": "hl7v2",
        "status": "processed",
        "size": 10,
        "payload": b"x",
    }
    with engine.begin() as conn:
        conn.execute(insert(messages), [msg] * (DELIVERED // 2))
        conn.execute(
            insert(messages),
            [{**msg, "status": "received", "received_at": now - timedelta(seconds=90)}] * 3,
        )
        row = {
            "message_id": 1,
            "patient_key": "k",
            "status": "delivered",
            "created_at": now,
            "next_attempt_at": now,
        }
        conn.execute(
            insert(deliveries),
            [
                {**row, "message_id": 1 + i // 2, "destination": DESTINATIONS[i % 3]}
                for i in range(DELIVERED)
            ],
        )
        old = now - timedelta(seconds=600)
        waiting = [("dcc", "pending", old), ("dcc", "pending", now), ("dmp", "retrying", old)]
        waiting += [("dmp", "dead", now)] * 4 + [("emage", "held", now)] * 2
        conn.execute(
            insert(deliveries),
            [
                {**row, "message_id": 50 + i, "destination": d, "status": s, "created_at": at}
                for i, (d, s, at) in enumerate(waiting)
            ],
        )


def _alerts(engine: Engine) -> None:
    now = utcnow()
    rows = [("destination_failing", "destination:dcc", "firing")]
    rows += [("destination_failing", "destination:dmp", "firing")]
    rows += [("queue_age", "destination:dcc", "pending"), ("disk_usage", "data_dir", "firing")]
    with engine.begin() as conn:
        conn.execute(
            insert(alert_state),
            [
                {"rule": r, "scope": sc, "state": st, "since": now, "updated_at": now}
                for r, sc, st in rows
            ],
        )


def _plans(engine: Engine) -> dict[str, str]:
    out = {}
    postgres = engine.dialect.name == "postgresql"
    with engine.connect() as conn:
        if postgres:
            conn.execute(text("ANALYZE"))
        for name, stmt in scrape_statements(DESTINATIONS).items():
            compiled = stmt.compile(engine, compile_kwargs={"literal_binds": True})  # type: ignore[attr-defined]
            prefix = "EXPLAIN " if postgres else "EXPLAIN QUERY PLAN "
            rows = conn.execute(text(prefix + str(compiled))).all()
            out[name] = "\n".join(str(r[-1]) for r in rows)
    return out


def _check_sqlite(plans: dict[str, str]) -> None:
    for name, plan in plans.items():
        for line in plan.splitlines():
            if "deliveries" in line or "messages" in line:
                assert line.startswith("SEARCH ") and "INDEX" in line, (name, plan)


def _check_postgres(plans: dict[str, str]) -> None:
    for name, plan in plans.items():
        for table in ("deliveries", "messages"):
            assert f"Seq Scan on {table}" not in plan, (name, plan)
    for name in ("counts", "heads"):
        assert "ix_deliveries_queue" in plans[name], plans[name]
        # The backlog by status: either index led by status serves it index-only
        # (PostgreSQL picks ix_messages_received_key, status + order key + id, at times).
        assert any(
            index in plans[name] for index in ("ix_messages_status_id", "ix_messages_received_key")
        ), plans[name]


def _gauges(store: Store) -> dict[tuple[str, tuple[str, ...]], float]:
    got = {}
    rules = ("destination_failing", "queue_age")
    gauges = JournalGauges(store.engine, DESTINATIONS, utcnow, rules)
    assert gauges.refresh()  # what the refresher thread does every gauge_refresh
    for family in gauges.collect():
        for s in family.samples:
            got[(s.name, tuple(s.labels.values()))] = s.value
    return got


def _check_values(got: dict[tuple[str, tuple[str, ...]], float]) -> None:
    assert got[("eai_queue_depth", ("dcc", "pending"))] == 2
    assert got[("eai_queue_depth", ("dmp", "retrying"))] == 1
    assert got[("eai_queue_depth", ("emage", "held"))] == 2
    assert got[("eai_dead_letters", ("dmp",))] == 4
    assert got[("eai_dead_letters", ("dcc",))] == 0
    assert 600 <= got[("eai_queue_oldest_age_seconds", ("dcc",))] < 700
    assert 600 <= got[("eai_queue_oldest_age_seconds", ("dmp",))] < 700
    assert got[("eai_queue_oldest_age_seconds", ("emage",))] == 0  # held rows: not a queue age
    assert got[("eai_pipeline_backlog", ())] == 3
    assert got[("eai_alerts_firing", ("destination_failing",))] == 2
    assert got[("eai_alerts_firing", ("queue_age",))] == 0  # pending is not firing
    assert got[("eai_alerts_firing", ("disk_usage",))] == 1  # firing, though not configured
    assert 90 <= got[("eai_pipeline_oldest_age_seconds", ())] < 190


def test_sqlite_scrape_uses_indexes_only(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/eai.db", tmp_path, os.urandom(32).hex())
    try:
        _fill(store.engine)
        _alerts(store.engine)
        _check_sqlite(_plans(store.engine))
        _check_values(_gauges(store))
    finally:
        store.close()


@pytest.mark.postgres
def test_postgres_scrape_uses_indexes_only(fresh_postgres_db, tmp_path):
    store = Store(fresh_postgres_db, tmp_path, os.urandom(32).hex())
    try:
        _fill(store.engine)
        _alerts(store.engine)
        _check_postgres(_plans(store.engine))
        _check_values(_gauges(store))
    finally:
        store.close()
