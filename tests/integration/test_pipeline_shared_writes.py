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
from pathlib import Path

import pytest

from eai.config import load_config
from eai.ingest_activity import IngestActivity
from eai.pipeline import SHARED_APPLY, Pipeline
from eai.store import Store
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


@pytest.mark.parametrize("ingest_first", [0.2, 0.0])
def test_the_pipeline_lets_a_listener_process_journal_first(
    tmp_path: Path, ingest_first: float
) -> None:
    """While a listener's own process keeps journaling, each batch waits ``ingest_first``
    (then goes anyway); with 0 it never waits."""
    loaded = load_config(write_routes(tmp_path, 9), env={})
    config = loaded.model_copy(
        update={"engine": loaded.engine.model_copy(update={"ingest_first": ingest_first})}
    )
    store = Store(config.engine.database, Path(config.engine.data_dir))
    store.start()
    try:
        for n in range(5):
            store.ingest_blocking(adt_entry(f"IF-{n:03d}", f"IFP{n}"), 10)
        now = [0.0]
        sleeps: list[float] = []

        async def sleep(seconds: float) -> None:
            sleeps.append(seconds)
            now[0] += seconds
            activity.journaled()  # the burst goes on

        activity = IngestActivity(clock=lambda: now[0], sleep=sleep)
        activity.journaled()
        pipeline = Pipeline(config, store, "node", ingest=activity)
        claimed = asyncio.run(pipeline._claim(100))
        assert len(claimed) == 5  # the batch is taken at the end of the wait
        assert sum(sleeps) == pytest.approx(ingest_first)
        assert activity.waited == pytest.approx(ingest_first)
    finally:
        store.close()
