"""The pipeline keeps its transactions short while another process writes the SQLite journal.

A listener in its own process (``own_process``) commits its ACKs' entries on the same
SQLite file, taking turns with the engine on the journal's write lock: the pipeline then
applies its plans in parts of ``SHARED_APPLY`` (each whole plan in one part), so that
those commits do not wait for a batch of hundreds of plans.
"""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

import pytest

from eai.config import load_config
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
