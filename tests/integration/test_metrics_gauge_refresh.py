"""The journal's gauges come from a refresher thread: a scrape runs no SQL, serves the last
values with their age, keeps them (marked stale) when a refresh fails, and a reload or the
next ``gauge_refresh`` brings the new counts."""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert
from sqlalchemy.exc import OperationalError

from eai.config import Config, MetricsConfig, load_config_text
from eai.metrics.endpoint import EngineState, JournalGauges, MetricsEndpoint
from eai.store import Store, utcnow
from eai.store.schema import deliveries, messages
from tests._database import database_url

pytestmark = pytest.mark.integration


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(database_url(tmp_path / "eai.db"), tmp_path, os.urandom(32).hex())
    yield s
    s.close()


def _config(tmp_path: Path, destinations: tuple[str, ...]) -> Config:
    dests = ", ".join(f"{{name: {d}, type: mllp, host: 127.0.0.1, port: 9}}" for d in destinations)
    return load_config_text(
        f"engine: {{data_dir: {tmp_path}}}\n"
        "listeners: [{name: adt, type: mllp, bind: 127.0.0.1:0}]\n"
        f"destinations: [{dests}]\n",
        env={},
    )


def _pending(engine: Engine, destination: str, n: int) -> None:
    now = utcnow()
    with engine.begin() as conn:
        mid = conn.execute(
            insert(messages).values(
                listener="adt",
                received_at=now,
                content_type="hl7v2",
                status="processed",
                size=1,
                payload=b"x",
            )  # fmt: skip
        ).inserted_primary_key[0]
        row = {"message_id": mid, "destination": destination, "patient_key": "k"}
        row |= {"status": "pending", "created_at": now, "next_attempt_at": now}
        conn.execute(insert(deliveries), [row] * n)


def _sample(text: str, name: str, labels: str = "") -> float | None:
    prefix = f"{name}{{{labels}}} " if labels else f"{name} "
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return None


def _depth(text: str, destination: str) -> float | None:
    return _sample(text, "eai_queue_depth", f'destination="{destination}",status="pending"')


def _wait(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


class _Statements:
    """Counts the SQL statements run on ``engine``; raises instead while ``failing``."""

    def __init__(self, engine: Engine) -> None:
        self.count = 0
        self.failing = False
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *_args: Any) -> None:
        if self.failing:
            raise OperationalError("SELECT", {}, Exception("database is locked"))
        self.count += 1


def test_no_journal_gauge_before_the_first_refresh(store: Store) -> None:
    gauges = JournalGauges(store.engine, ("dcc",), utcnow, interval=300)
    got = _collected(gauges)  # not started: a scrape does not read the journal itself
    assert ("eai_queue_depth", ("dcc", "pending")) not in got
    assert got[("eai_metrics_gauges_stale", ())] == 1
    assert math.isnan(got[("eai_metrics_gauges_age_seconds", ())])  # never read


def _endpoint(tmp_path: Path, store: Store, refresh: str) -> tuple[MetricsEndpoint, Any]:
    loop = asyncio.new_event_loop()
    state = EngineState(
        journal_write=lambda _t: None,
        loop=loop,
        listeners=lambda: {"adt": True},
        workers=lambda: {"pipeline": True},
    )
    config = MetricsConfig.model_validate({"bind": "127.0.0.1:0", "gauge_refresh": refresh})
    endpoint = MetricsEndpoint(config, _config(tmp_path, ("dcc",)), store.engine, state)
    endpoint.start()  # the refresher's first read is at once, on its own thread
    assert _wait(lambda: _depth(endpoint.scrape().decode(), "dcc") == 0, 10)
    return endpoint, loop


def test_a_scrape_runs_no_sql_and_a_reload_refreshes_at_once(tmp_path: Path, store: Store) -> None:
    endpoint, loop = _endpoint(tmp_path, store, "300s")  # no periodic refresh in this test
    try:
        statements = _Statements(store.engine)
        _pending(store.engine, "dcc", 40)
        statements.count = 0
        for _ in range(20):
            text = endpoint.scrape().decode()
        assert statements.count == 0  # the counts grow with the rows waiting; a scrape does not
        assert _depth(text, "dcc") == 0  # the values of the first refresh, at start
        age = _sample(text, "eai_metrics_gauges_age_seconds")
        assert age is not None and 0 <= age < 60
        assert _sample(text, "eai_metrics_gauges_stale") == 0
        endpoint.reconfigure(_config(tmp_path, ("dcc", "dmp")))  # a reload: refresh now
        assert _wait(lambda: _depth(endpoint.scrape().decode(), "dmp") == 0, 10)
        text = endpoint.scrape().decode()
        assert _depth(text, "dcc") == 40
        assert statements.count == 2  # one refresh: the counts and the heads statements
    finally:
        endpoint.stop()
        loop.close()


def test_the_refresher_reads_every_gauge_refresh(tmp_path: Path, store: Store) -> None:
    endpoint, loop = _endpoint(tmp_path, store, "200ms")
    try:
        _pending(store.engine, "dcc", 7)
        assert _wait(lambda: _depth(endpoint.scrape().decode(), "dcc") == 7, 10)
        age = _sample(endpoint.scrape().decode(), "eai_metrics_gauges_age_seconds")
        assert age is not None and age < 5
    finally:
        endpoint.stop()
        loop.close()


def _collected(gauges: JournalGauges) -> dict[tuple[str, tuple[str, ...]], float]:
    return {
        (s.name, tuple(s.labels.values())): s.value for f in gauges.collect() for s in f.samples
    }


def test_a_failed_refresh_keeps_the_old_values_marked_stale(store: Store) -> None:
    gauges = JournalGauges(store.engine, ("dcc",), utcnow, interval=300)
    _pending(store.engine, "dcc", 3)
    assert gauges.refresh()
    statements = _Statements(store.engine)
    statements.failing = True
    assert not gauges.refresh()
    assert not gauges.refresh()
    got = _collected(gauges)
    assert got[("eai_queue_depth", ("dcc", "pending"))] == 3  # kept
    assert got[("eai_metrics_gauges_stale", ())] == 1
    assert got[("eai_metrics_gauges_refresh_failures_total", ())] == 2
    statements.failing = False
    _pending(store.engine, "dcc", 5)
    assert gauges.refresh()
    got = _collected(gauges)
    assert got[("eai_queue_depth", ("dcc", "pending"))] == 8
    assert got[("eai_metrics_gauges_stale", ())] == 0
    assert got[("eai_metrics_gauges_refresh_failures_total", ())] == 2
