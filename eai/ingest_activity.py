"""When listeners serving in processes of their own last journaled: ingest goes first.

Touches: nothing.

A listener with ``own_process: true`` commits its entries on the journal the engine's
pipeline writes too; on SQLite the two processes take turns on one write lock, and each
of the pipeline's transactions (tens of plans applied) makes the listener's commits, so
its ACKs, wait. During a burst the pipeline therefore waits before each batch until the
listener's process has been quiet for :data:`QUIET` s, at most ``engine.ingest_first``
s: the listener answers at the speed of its own commits, the journal holds the backlog,
and the pipeline still takes at least one batch per ``ingest_first`` (``pipeline_batch``
messages: 1,000 a second with the defaults) and all it can between bursts. On
PostgreSQL the processes take no turns on a lock and the pipeline does not wait
(``eai.pipeline.Pipeline._claim``).

The listener's process reports what it journaled every 5 ms while it journals
(:class:`eai.ingest_report.IngestReport`); the engine calls :meth:`journaled` for each
report that carries received messages. Listeners in the engine's process do not count:
their commits share the engine's writer and its group commits.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

__all__ = ["POLL", "QUIET", "IngestActivity"]

QUIET = 0.012
"""Seconds without a report of received messages after which the listeners are quiet:
two report intervals of the listener's process (5 ms) and a margin."""

POLL = 0.005
"""How often a waiting pipeline looks again (one report interval)."""


class IngestActivity:
    """When a listener's own process last reported messages journaled (monotonic clock)."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._last = -math.inf
        self.waited = 0.0
        """Seconds the pipeline has waited for quiet, in all (not exported: for tests and
        for reading in a debugger)."""

    def journaled(self) -> None:
        """A listener's process reported messages it journaled just now."""
        self._last = self._clock()

    def busy(self) -> bool:
        """True while a listener's process journaled within the last :data:`QUIET` s."""
        return self._clock() - self._last < QUIET

    async def quiet(self, limit: float) -> float:
        """Waits until the listeners' processes are quiet, at most ``limit`` s; returns the
        seconds waited (0 when they already are)."""
        start = self._clock()
        waited = 0.0
        while self.busy() and waited < limit:
            await self._sleep(min(POLL, limit - waited))
            waited = self._clock() - start
        self.waited += waited
        return waited
