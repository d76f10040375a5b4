"""Ingest first: the pipeline waits for quiet while a listener's own process journals."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from eai._engine_ingest import EngineIngest
from eai.ingest_activity import POLL, QUIET, IngestActivity
from eai.ingest_report import IngestReport


class FakeTime:
    """A clock that only the waits move; ``busy_until``: the listener journals until then."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []
        self.activity: IngestActivity | None = None
        self.busy_until = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.activity is not None and self.now < self.busy_until:
            self.activity.journaled()  # a report came in while the pipeline waited


def _activity() -> tuple[IngestActivity, FakeTime]:
    t = FakeTime()
    activity = IngestActivity(clock=t.clock, sleep=t.sleep)
    t.activity = activity
    return activity, t


def test_quiet_at_once_when_no_listener_process_journaled() -> None:
    activity, t = _activity()
    assert not activity.busy()
    assert asyncio.run(activity.quiet(0.2)) == 0.0
    assert t.sleeps == []


def test_busy_for_quiet_seconds_after_a_report() -> None:
    activity, t = _activity()
    activity.journaled()
    assert activity.busy()
    t.now += QUIET - 0.001
    assert activity.busy()
    t.now += 0.002
    assert not activity.busy()


def test_waits_until_the_burst_ends() -> None:
    activity, t = _activity()
    activity.journaled()
    t.busy_until = t.now + 0.05  # the listener journals for 50 ms more
    waited = asyncio.run(activity.quiet(1.0))
    assert 0.05 + QUIET - POLL <= waited <= 0.05 + QUIET + POLL
    assert all(s <= POLL for s in t.sleeps)
    assert activity.waited == pytest.approx(waited)


def test_waits_at_most_the_limit_through_a_long_burst() -> None:
    activity, t = _activity()
    activity.journaled()
    t.busy_until = t.now + 60.0
    waited = asyncio.run(activity.quiet(0.2))
    assert waited == pytest.approx(0.2)
    assert activity.busy()  # still journaling: the pipeline takes its batch anyway


def test_the_engine_marks_activity_only_for_reports_of_received_messages() -> None:
    activity, t = _activity()

    async def scenario() -> list[bool]:
        wake = asyncio.Event()
        store: Any = object()  # journaled_elsewhere does not touch the store
        ingest = EngineIngest(store, wake, asyncio.get_running_loop(), None, activity)
        seen = []
        ingest.journaled_elsewhere("adt", IngestReport(ack_seconds=[0.001]))
        seen.append(activity.busy())
        ingest.journaled_elsewhere("adt", IngestReport(Counter({("received", True): 2})))
        seen.append(activity.busy())  # retransmissions only: nothing new for the pipeline
        ingest.journaled_elsewhere("adt", IngestReport(Counter({("received", False): 3})))
        seen.append(activity.busy())
        seen.append(wake.is_set())
        return seen

    assert asyncio.run(scenario()) == [False, False, True, True]
