"""The shared worker loop of the pipeline and the delivery workers (no I/O: fake claim/process)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from eai._worker import IDLE_WAIT, Backoff, WorkerLoop
from eai.config import Config, DestinationConfig
from eai.delivery import DeliveryWorker
from eai.errors import StoreError
from eai.pipeline import Pipeline


class _FailingWriter:
    """A writer whose first ``fail`` transactions raise, recording when each one ran."""

    def __init__(self, fail: int, stopping: asyncio.Event, wake: list[asyncio.Event]) -> None:
        self.fail = fail
        self.stopping = stopping
        self.wake = wake
        self.times: list[float] = []

    async def run(self, _op: Any) -> Any:
        loop = asyncio.get_running_loop()
        self.times.append(loop.time())
        for event in self.wake:  # new work keeps arriving while the database is down
            loop.call_soon(event.set)
        if len(self.times) <= self.fail:
            raise StoreError("database is locked")
        self.stopping.set()
        return []


class _FakeStore:
    def __init__(self, writer: _FailingWriter) -> None:
        self.writer = writer
        self.cipher = None


class _IdleDestination:
    async def start(self) -> None:
        return None

    async def send(self, item: Any) -> Any:
        raise AssertionError("nothing is claimed, nothing is sent")

    async def close(self) -> None:
        return None


def _delivery_worker(store: Any) -> DeliveryWorker:
    return DeliveryWorker(
        DestinationConfig(name="dest", type="fake"), _IdleDestination(), store, "node"
    )


def _pipeline(store: Any) -> Pipeline:
    return Pipeline(Config.model_validate({}), store, "node")


@pytest.mark.parametrize("make", [_delivery_worker, _pipeline], ids=["delivery", "pipeline"])
def test_worker_waits_after_a_failing_claim(make: Any) -> None:
    """The old delivery loop logged "retrying in 1 s" and claimed again at once when new
    work woke it (a hot loop against a failing database): the claim after a failure comes
    only after the back-off, whatever wakes the worker (the pipeline and the delivery
    workers share the loop)."""

    async def scenario() -> list[float]:
        stopping = asyncio.Event()
        wakes: list[asyncio.Event] = []
        writer = _FailingWriter(1, stopping, wakes)
        worker = make(_FakeStore(writer))
        wakes.append(worker.wake)
        await asyncio.wait_for(worker.run(stopping), timeout=30)
        return writer.times

    times = asyncio.run(scenario())
    assert len(times) == 2
    assert times[1] - times[0] >= 0.9


class _Clock:
    """A fake clock and sleep: ``sleep`` records the delay and advances the clock, or
    blocks until :meth:`release` when ``blocking``."""

    def __init__(self, *, blocking: bool = False) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.blocking = blocking
        self._released = asyncio.Event()

    def time(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        if self.blocking:
            await self._released.wait()
        self.now += delay

    def release(self) -> None:
        self._released.set()


class _Script:
    """Claims answering from a script (a batch, or an exception to raise); the process
    records each batch. ``on_claim`` runs at each claim (1-based count)."""

    def __init__(self, answers: list[list[int] | Exception], stopping: asyncio.Event) -> None:
        self.answers = answers
        self.stopping = stopping
        self.claims: list[int] = []
        self.processed: list[list[int]] = []
        self.on_claim: Any = None
        self.process_hook: Any = None

    async def claim(self, limit: int) -> list[int]:
        self.claims.append(limit)
        if self.on_claim is not None:
            self.on_claim(len(self.claims))
        if not self.answers:
            self.stopping.set()
            return []
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def process(self, batch: list[int]) -> None:
        if self.process_hook is not None:
            await self.process_hook(batch)
        self.processed.append(batch)


def _loop(script: _Script, clock: _Clock, **kw: Any) -> WorkerLoop[list[int]]:
    kw.setdefault("batch", 4)
    kw.setdefault("batch_wait", 0.1)
    return WorkerLoop(
        "test worker", script.claim, script.process, clock=clock.time, sleep=clock.sleep, **kw
    )


def _run(main: Any) -> Any:
    return asyncio.run(asyncio.wait_for(main(), timeout=10))


def test_stop_while_idle_ends_the_wait_at_once() -> None:
    async def main() -> tuple[_Script, _Clock]:
        stopping = asyncio.Event()
        script = _Script([[]], stopping)
        clock = _Clock(blocking=True)  # the idle wait would never end by itself
        loop = _loop(script, clock)
        script.on_claim = lambda n: asyncio.get_running_loop().call_soon(stopping.set)
        await loop.run(stopping)
        return script, clock

    script, clock = _run(main)
    assert script.claims == [4]
    assert clock.sleeps == [IDLE_WAIT]


def test_stop_mid_batch_finishes_the_batch_and_claims_no_more() -> None:
    async def main() -> _Script:
        stopping = asyncio.Event()
        script = _Script([[1, 2, 3, 4], [5, 6, 7, 8]], stopping)

        async def slow(batch: list[int]) -> None:
            stopping.set()  # SIGTERM while the batch is being sent
            await asyncio.sleep(0)

        script.process_hook = slow
        await _loop(script, _Clock()).run(stopping)
        return script

    script = _run(main)
    assert script.processed == [[1, 2, 3, 4]]
    assert len(script.claims) == 1


def test_error_is_logged_once_waits_the_backoff_and_recovers(caplog: Any) -> None:
    async def main() -> tuple[_Script, _Clock]:
        stopping = asyncio.Event()
        script = _Script(
            [
                StoreError("database is locked"),
                StoreError("database is locked"),
                [1, 2, 3, 4],
                StoreError("disk I/O error"),
                [5, 6, 7, 8],
            ],
            stopping,
        )
        clock = _Clock()
        await _loop(script, clock).run(stopping)
        return script, clock

    with caplog.at_level(logging.INFO, logger="eai._worker"):
        script, clock = _run(main)
    assert script.processed == [[1, 2, 3, 4], [5, 6, 7, 8]]
    # 1 s, doubled, then reset by the round that succeeded; full batches go on at once
    assert clock.sleeps == [1.0, 2.0, 1.0]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "test worker: database is locked; retrying in 1 s",
        "test worker: database is locked; retrying in 2 s",
        "test worker: disk I/O error; retrying in 1 s",
    ]
    assert all(r.exc_info is None for r in errors)
    recovered = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert recovered == [
        "test worker: working again after 2 failed round(s)",
        "test worker: working again after 1 failed round(s)",
    ]


def test_backoff_is_bounded() -> None:
    backoff = Backoff(initial=1.0, max=30.0)
    assert [backoff.delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_unexpected_error_is_logged_with_its_traceback_and_the_worker_goes_on(
    caplog: Any,
) -> None:
    async def main() -> tuple[_Script, _Clock]:
        stopping = asyncio.Event()
        script = _Script([[1], [2]], stopping)
        calls = 0

        async def buggy(batch: list[int]) -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise KeyError("bug")

        script.process_hook = buggy
        clock = _Clock()
        await _loop(script, clock).run(stopping)
        return script, clock

    with caplog.at_level(logging.ERROR, logger="eai._worker"):
        script, clock = _run(main)
    assert script.processed == [[2]]
    assert clock.sleeps[0] == 1.0
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage() == "test worker: unexpected error; retrying in 1 s"
    assert record.exc_info is not None


def test_partial_batch_waits_batch_wait_from_the_start_of_the_round() -> None:
    async def main() -> tuple[_Script, _Clock]:
        stopping = asyncio.Event()
        script = _Script([[1, 2], [3, 4, 5, 6]], stopping)
        clock = _Clock()

        async def busy(batch: list[int]) -> None:
            clock.now += 0.03  # the round itself took 30 ms

        script.process_hook = busy
        await _loop(script, clock, batch=4, batch_wait=0.1).run(stopping)
        return script, clock

    script, clock = _run(main)
    assert script.processed == [[1, 2], [3, 4, 5, 6]]
    # 100 ms after the start of the round, which took 30 ms; the full batch is not paced
    assert clock.sleeps == [pytest.approx(0.07)]


def test_full_batches_follow_each_other_at_once() -> None:
    async def main() -> tuple[_Script, _Clock]:
        stopping = asyncio.Event()
        script = _Script([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]], stopping)
        clock = _Clock()
        await _loop(script, clock).run(stopping)
        return script, clock

    script, clock = _run(main)
    assert len(script.processed) == 3
    assert clock.sleeps == []


def test_wake_ends_the_idle_wait_but_not_the_backoff() -> None:
    async def main() -> tuple[list[int], int]:
        stopping = asyncio.Event()
        script = _Script([[], StoreError("database is locked"), [1]], stopping)
        clock = _Clock(blocking=True)
        loop = _loop(script, clock)
        task = asyncio.create_task(loop.run(stopping))
        for _ in range(20):
            await asyncio.sleep(0)
        assert len(script.claims) == 1  # idle, waiting
        loop.wake.set()  # new work
        for _ in range(20):
            await asyncio.sleep(0)
        assert len(script.claims) == 2  # claimed again: it failed, backing off
        loop.wake.set()
        for _ in range(20):
            await asyncio.sleep(0)
        claims_during_backoff = len(script.claims)
        clock.release()  # the back-off ends
        await task
        return script.claims, claims_during_backoff

    claims, during = _run(main)
    assert during == 2
    assert len(claims) == 4


def test_work_arriving_during_an_empty_claim_is_not_missed() -> None:
    async def main() -> _Script:
        stopping = asyncio.Event()
        script = _Script([[], [1]], stopping)
        clock = _Clock(blocking=True)  # an idle wait would hang: it must not happen
        loop = _loop(script, clock)
        script.on_claim = lambda n: loop.wake.set() if n == 1 else None
        task = asyncio.create_task(loop.run(stopping))
        for _ in range(50):
            await asyncio.sleep(0)
            if task.done():
                break
        clock.release()
        await task
        return script

    script = _run(main)
    assert script.processed == [[1]]
