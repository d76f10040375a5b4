"""The engine's scheduler stops without cancelling a run under way (eai/_engine_jobs.py):
APScheduler's own shutdown cancels it, an ERROR with a CancelledError traceback at every
stop that falls during a run (often on PostgreSQL, where each leader's run first takes
its lock in a thread: tests/integration/test_log_levels.py saw it)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from eai._engine_jobs import stop_scheduler
from eai._scheduler_logs import quiet_scheduler_logs

pytestmark = pytest.mark.integration


def _stop_during_a_run(job_seconds: float, grace: float) -> list[str]:
    """Starts a scheduler whose one job sleeps ``job_seconds``, stops it while the job
    runs; what the job got to do ("started", then "ended" or "cancelled")."""
    seen: list[str] = []

    async def job() -> None:
        seen.append("started")
        try:
            await asyncio.sleep(job_seconds)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        seen.append("ended")

    async def main() -> None:
        quiet_scheduler_logs()
        scheduler = AsyncIOScheduler(timezone="UTC")
        scheduler.add_job(job)  # once, now
        scheduler.start()
        for _ in range(1000):  # bounded: 10 s
            if seen:
                break
            await asyncio.sleep(0.01)
        assert seen == ["started"]
        await stop_scheduler(scheduler, grace)
        for _ in range(5):  # the shutdown runs on the loop, then a cancelled job sees it
            await asyncio.sleep(0)
        assert not scheduler.running

    asyncio.run(main())
    return seen


def test_a_run_under_way_ends_before_the_scheduler_stops(caplog):
    caplog.set_level(logging.INFO)
    assert _stop_during_a_run(0.3, grace=30.0) == ["started", "ended"]
    assert [r.getMessage() for r in caplog.records if r.name.startswith("apscheduler")] == []


def test_a_run_longer_than_the_grace_is_cancelled(caplog):
    caplog.set_level(logging.INFO)
    assert _stop_during_a_run(600.0, grace=0.1) == ["started", "cancelled"]
    [error] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "raised an exception" in error.getMessage()
