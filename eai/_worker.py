"""The one worker loop of the pipeline and the delivery workers: claim, process, pace, back off.

Touches: nothing itself (it calls the ``claim`` and ``process`` it is given).

A round clears the wake-up event, claims up to ``batch`` items (leasing them: the claim
is the caller's) and processes them. Then:

- nothing claimed: wait for the wake-up event (new work), at most ``idle_wait``;
- a partial batch: start the next round ``batch_wait`` after the start of this one, so
  that under load each transaction carries many items (fewer commits);
- a full batch: start the next round at once;
- an error (the claim or the processing raised): log it once, then wait the back-off
  (:class:`Backoff`: 1 s doubling up to 30 s, reset by a round that succeeds). New work
  does not shorten that wait: a failing database is not retried in a hot loop.

``stopping`` ends the loop after the round in progress (a claimed batch is always
processed to the end, its outcomes recorded) and cuts any wait short.

Pacing is on the hot path (a round every ``batch_wait`` under load, for the pipeline and
each delivery worker): a wait is one timer on the event loop beside one watch of
``stopping`` that lives as long as :meth:`WorkerLoop.run`, so a round creates no task
(a wait for the wake-up, when idle, makes one). An injected ``sleep`` (tests) is awaited
as a task instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sized
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from eai.errors import StoreError

__all__ = ["BATCH_WAIT", "IDLE_WAIT", "Backoff", "WorkerLoop"]

log = logging.getLogger(__name__)

B = TypeVar("B", bound=Sized)

BATCH_WAIT = 0.01
"""Seconds between the starts of two rounds after a partial batch (``engine.batch_wait``)."""

IDLE_WAIT = 0.5
"""Seconds an idle worker waits for a wake-up before claiming again (work from another
node, leases that expired, retries that fell due)."""


@dataclass(frozen=True)
class Backoff:
    """Wait after consecutive failed rounds: ``initial`` doubling up to ``max`` seconds."""

    initial: float = 1.0
    max: float = 30.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th consecutive failed round (1-based)."""
        return min(self.max, self.initial * 2.0 ** max(0, failures - 1))


class WorkerLoop(Generic[B]):
    """Runs ``claim(batch)`` then ``process(claimed)`` until ``stopping`` is set.

    ``clock`` and ``sleep`` default to the event loop's time and its timers (what
    :func:`asyncio.sleep` uses); tests pass fakes."""

    def __init__(
        self,
        name: str,
        claim: Callable[[int], Awaitable[B]],
        process: Callable[[B], Awaitable[None]],
        *,
        batch: int,
        batch_wait: float = BATCH_WAIT,
        wake: asyncio.Event | None = None,
        idle_wait: float = IDLE_WAIT,
        backoff: Backoff | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self.name = name
        self._claim = claim
        self._process = process
        self._batch = max(1, batch)
        self._batch_wait = batch_wait
        self.wake = wake if wake is not None else asyncio.Event()
        self._idle_wait = idle_wait
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._sleep = sleep
        self.failures = 0
        """Consecutive failed rounds (0 after a round that succeeds)."""
        self._stop_watch: asyncio.Future[Any] | None = None

    async def run(self, stopping: asyncio.Event) -> None:
        clock = self._clock or asyncio.get_running_loop().time
        self._stop_watch = asyncio.ensure_future(stopping.wait())
        try:
            await self._rounds(stopping, clock)
        finally:
            self._stop_watch.cancel()
            await asyncio.gather(self._stop_watch, return_exceptions=True)
            self._stop_watch = None

    async def _rounds(self, stopping: asyncio.Event, clock: Callable[[], float]) -> None:
        while not stopping.is_set():
            started = clock()
            self.wake.clear()  # set again by work that arrives from now on
            try:
                claimed = await self._claim(self._batch)
                if len(claimed):
                    await self._process(claimed)
            except Exception as exc:  # noqa: BLE001 - the worker outlives any failed round
                self.failures += 1
                delay = self._backoff.delay(self.failures)
                self._report(exc, delay)
                await self._pause(delay, stopping, on_wake=False)
                continue
            if self.failures:
                log.info("%s: working again after %d failed round(s)", self.name, self.failures)
                self.failures = 0
            n = len(claimed)
            if n == 0:
                await self._pause(self._idle_wait, stopping, on_wake=True)
            elif n < self._batch:
                await self._pause(started + self._batch_wait - clock(), stopping, on_wake=False)

    def _report(self, exc: Exception, delay: float) -> None:
        if isinstance(exc, StoreError):
            log.error("%s: %s; retrying in %g s", self.name, exc, delay)
        else:
            log.exception("%s: unexpected error; retrying in %g s", self.name, delay)

    async def _pause(self, delay: float, stopping: asyncio.Event, *, on_wake: bool) -> None:
        """Waits ``delay`` seconds, less if ``stopping`` (or, ``on_wake``, the wake-up) is set."""
        if delay <= 0 or stopping.is_set() or (on_wake and self.wake.is_set()):
            return
        assert self._stop_watch is not None  # set by run()
        own: list[asyncio.Future[Any]] = []  # the tasks made for this wait only
        if on_wake:
            own.append(asyncio.ensure_future(self.wake.wait()))
        timeout: float | None = delay
        if self._sleep is not None:
            own.append(asyncio.ensure_future(self._sleep(delay)))
            timeout = None  # the injected sleep ends the wait
        try:
            await asyncio.wait(
                [self._stop_watch, *own], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for w in own:
                w.cancel()
            if own:
                await asyncio.gather(*own, return_exceptions=True)
