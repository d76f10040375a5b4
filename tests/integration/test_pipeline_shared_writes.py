"""The pipeline keeps its transactions short while another process writes the SQLite journal.

A listener in its own process (``own_process``) commits its ACKs' entries on the same
SQLite file, taking turns with the engine on the journal's write lock: the pipeline then
applies its plans in parts of ``SHARED_APPLY`` (each whole plan in one part), so that
those commits do not wait for a batch of hundreds of plans; and during a burst it waits
for the listener's process to be quiet before each batch, at most ``engine.ingest_first``.
"""

from __future__ import annotations

import asyncio
import functools
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from eai.config import load_config
from eai.ingest_activity import IngestActivity
from eai.pipeline import INGEST_FIRST_LAG, SHARED_APPLY, Pipeline
from eai.store import Store, utcnow
from eai.store.schema import messages
from tests.engine_harness import adt_entry, write_routes

pytestmark = pytest.mark.sqlite_only

MESSAGES = 2 * SHARED_APPLY + 6


def _applied_in(tmp_path: Path, shared: bool) -> tuple[list[int], set[str]]:
    """Sizes of the pipeline's apply transactions for one batch, and the statuses after."""
    config = load_config(write_routes(tmp_path, 9), env={})
    store = Store(config.engine.database, Path(config.engine.data_dir))
    store.start()
    try:
        for n in range(MESSAGES):
            store.ingest_blocking(adt_entry(f"SW-{n:03d}", f"SWP{n % 5}"), 10)
        if shared:
            store.access()  # what starting a listener in its own process does
        assert store.shares_writes is shared
        pipeline = Pipeline(config, store, "node")
        sizes: list[int] = []
        run = store.writer.run

        async def counting(op):
            if isinstance(op, functools.partial) and "plans" in op.keywords:
                sizes.append(len(op.keywords["plans"]))
            return await run(op)

        store.writer.run = counting

        async def one_round() -> None:
            claimed = await pipeline._claim(1000)
            assert len(claimed) == MESSAGES
            await pipeline._process(claimed)

        asyncio.run(one_round())
        with store.engine.connect() as conn:
            statuses = {row[0] for row in conn.exec_driver_sql("SELECT status FROM messages")}
        return sizes, statuses
    finally:
        store.close()


def test_one_transaction_when_the_engine_writes_alone(tmp_path: Path) -> None:
    sizes, statuses = _applied_in(tmp_path, shared=False)
    assert sizes == [MESSAGES]
    assert statuses == {"processed"}


def test_parts_of_shared_apply_when_another_process_writes(tmp_path: Path) -> None:
    sizes, statuses = _applied_in(tmp_path, shared=True)
    assert sizes == [SHARED_APPLY, SHARED_APPLY, 6]
    assert statuses == {"processed"}


def _journaling_on() -> tuple[IngestActivity, list[float]]:
    """A listener's process that journals throughout (a report at every look), on a clock
    that only the pipeline's waits move; and the list of those waits."""
    now = [0.0]
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds
        activity.journaled()  # the burst goes on

    activity = IngestActivity(clock=lambda: now[0], sleep=sleep)
    activity.journaled()
    return activity, sleeps


@pytest.mark.parametrize(
    ("ingest_first", "shared", "waits"),
    [(0.2, True, 0.2), (0.0, True, 0.0), (0.2, False, 0.0)],
)
def test_the_pipeline_lets_a_listener_process_journal_first(
    tmp_path: Path, ingest_first: float, shared: bool, waits: float
) -> None:
    """While a listener's own process keeps journaling the SQLite journal, each batch
    waits ``ingest_first`` (then goes anyway); with 0 it never waits, nor when no other
    process writes through the journal's lock (PostgreSQL: each has its connections)."""
    loaded = load_config(write_routes(tmp_path, 9), env={})
    config = loaded.model_copy(
        update={"engine": loaded.engine.model_copy(update={"ingest_first": ingest_first})}
    )
    store = Store(config.engine.database, Path(config.engine.data_dir))
    store.start()
    try:
        for n in range(5):
            store.ingest_blocking(adt_entry(f"IF-{n:03d}", f"IFP{n}"), 10)
        if shared:
            store.access()  # what starting a listener in its own process does
        activity, sleeps = _journaling_on()
        pipeline = Pipeline(config, store, "node", ingest=activity)
        claimed = asyncio.run(pipeline._claim(100))
        assert len(claimed) == 5  # the batch is taken at the end of the wait
        assert sum(sleeps) == pytest.approx(waits)
        assert activity.waited == pytest.approx(waits)
    finally:
        store.close()


def test_the_pipeline_stops_waiting_once_it_is_behind(tmp_path: Path) -> None:
    """A batch whose oldest message waited more than ``INGEST_FIRST_LAG``: the next claim
    goes at once, however busy the listener's process (a feed faster than the pipeline's
    share is not hidden behind a growing backlog)."""
    config = load_config(write_routes(tmp_path, 9), env={})
    store = Store(config.engine.database, Path(config.engine.data_dir))
    store.start()
    try:
        for n in range(6):
            store.ingest_blocking(adt_entry(f"LAG-{n:03d}", f"LAGP{n}"), 10)
        store.access()
        late = utcnow() - timedelta(seconds=INGEST_FIRST_LAG + 5)
        with store.engine.begin() as conn:  # the first three waited too long
            conn.execute(update(messages).where(messages.c.id <= 3).values(received_at=late))
        activity, sleeps = _journaling_on()
        pipeline = Pipeline(config, store, "node", ingest=activity)

        async def rounds() -> list[float]:
            waits = []
            for _ in range(3):
                before = sum(sleeps)
                claimed = await pipeline._claim(3)
                waits.append(sum(sleeps) - before)
                await pipeline._process(claimed)
            return waits

        waits = asyncio.run(rounds())
        # waited (not yet known to be behind), then at once (behind), then waited again
        # (the second batch, fresh messages, caught up; the third finds none left)
        assert waits == pytest.approx([config.engine.ingest_first, 0.0, config.engine.ingest_first])
    finally:
        store.close()
