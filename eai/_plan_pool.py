"""Planning in worker processes (``engine.plan_processes``): parse, map, check, seal.

Touches: processes (starts and stops its workers), nothing else (planning does no I/O).

Planning a CR-BIO report (decrypt, parse the ORU and its CDA, run the mapping, check the
Bundle, seal it) takes 5 to 15 ms of CPU; in a thread of the engine it holds the one GIL
the listeners, the journal writer and the delivery workers share. With
``plan_processes: N`` the pipeline hands each batch, cut in N slices, to N worker
processes (``spawn``: a clean interpreter each, whatever the engine's threads), and the
engine's process keeps only the claims, the writes and the network.

What crosses the pipe is small and plain: the claimed messages (sealed payloads) one
way, the plans (sealed outputs) and the workers' log records the other. A worker builds
its own :class:`~eai.config.Config` from the routes.yaml text the engine runs (the
model is built per plugin set and does not pickle), its charter and mappings read as a
reload reads them; a reload starts new workers on the new text and lets the old ones
finish what they hold. The worker's log records are handled again by the engine's
loggers, so its handlers, levels and filters (no patient data) apply as to its own.

With an identity server the pipeline asks the workers twice per batch: the identities
the messages state (parsed there), then the plans once the engine has reconciled them
(parsed again: a few per cent of the planning, against moving parsed trees between
processes). A worker that dies (killed, out of memory) fails its batch; the pool starts
afresh, and the pipeline's loop logs the failure and claims the batch again at its next
round (the lease is its own).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, TypeVar

from eai import child_logs
from eai.config import Config
from eai.identity_gate import Reconciled
from eai.store import Cipher, ClaimedMessage, MessagePlan
from identity.patient import PatientIdentity

__all__ = ["PlanPool", "PlanSource"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_SPAWN = multiprocessing.get_context("spawn")


@dataclass(frozen=True, slots=True)
class PlanSource:
    """What a worker builds its planning from: the routes.yaml text and its file name
    (relative paths and issues refer to it), and the journal's cipher."""

    text: bytes
    filename: str
    cipher: Cipher


# -- in the worker process ------------------------------------------------------------

_worker_config: Config | None = None
_worker_cipher: Cipher | None = None
_records: list[logging.LogRecord] = []


def _init(source: PlanSource, levels: Mapping[str, int]) -> None:
    global _worker_config, _worker_cipher
    # Ctrl-C in a terminal reaches the whole process group: the engine stops and closes
    # its workers itself (a SIGTERM, as systemd sends to the group, still ends them).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    child_logs.forward(_records.append, levels)  # handed back with each answer
    from eai._reload import read_new_config

    _worker_config = read_new_config(source.text, source.filename)
    _worker_cipher = source.cipher


def _taken(result: T) -> tuple[T, list[logging.LogRecord]]:
    records = list(_records)
    _records.clear()
    return result, records


def _identities(
    claimed: Sequence[ClaimedMessage],
) -> tuple[dict[int, PatientIdentity], list[logging.LogRecord]]:
    from eai._plan import identities_of, parse_all

    assert _worker_config is not None and _worker_cipher is not None
    parsed = parse_all(_worker_config, _worker_cipher, claimed)
    return _taken(identities_of(_worker_config, claimed, parsed))


def _plans(
    claimed: Sequence[ClaimedMessage], reconciled: Mapping[int, Reconciled] | None
) -> tuple[list[MessagePlan], list[logging.LogRecord]]:
    from eai._plan import plan_all

    assert _worker_config is not None and _worker_cipher is not None
    return _taken(plan_all(_worker_config, _worker_cipher, claimed, reconciled))


# -- in the engine ----------------------------------------------------------------------


def _slices(claimed: Sequence[ClaimedMessage], n: int) -> list[list[ClaimedMessage]]:
    """``claimed`` in at most ``n`` contiguous slices of near-equal length."""
    n = max(1, min(n, len(claimed)))
    size, extra = divmod(len(claimed), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        out.append(list(claimed[start:end]))
        start = end
    return out


class PlanPool:
    """``processes`` planning workers; :meth:`identities` and :meth:`plans` spread one
    batch over them; :meth:`reconfigure` after a reload; :meth:`close` at the stop."""

    def __init__(self, source: PlanSource, processes: int) -> None:
        self._processes = processes
        self._source = source
        self.planned = 0
        """Messages planned by the workers since the start (tests, diagnostics)."""
        self._executor = self._start(source)

    def _start(self, source: PlanSource) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self._processes,
            mp_context=_SPAWN,
            initializer=_init,
            initargs=(source, child_logs.levels()),
        )

    def pids(self) -> list[int]:
        """The workers' process ids (those started so far)."""
        return sorted(p.pid for p in self._executor._processes.values() if p.pid is not None)

    def warm_up(self) -> None:
        """Starts every worker now (its imports and config take about a second), so the
        first batch does not wait for them."""
        for _ in range(self._processes):
            self._executor.submit(os.getpid)

    def reconfigure(self, source: PlanSource) -> None:
        """Plans the next batches with ``source`` (a reload): new workers; the old ones
        finish the batch they hold and exit."""
        old, self._source = self._executor, source
        self._executor = self._start(source)
        self.warm_up()
        old.shutdown(wait=False)

    async def identities(self, claimed: Sequence[ClaimedMessage]) -> dict[int, PatientIdentity]:
        out: dict[int, PatientIdentity] = {}
        for part in await self._spread(_identities, claimed, ()):
            out.update(part)
        return out

    async def plans(
        self, claimed: Sequence[ClaimedMessage], reconciled: Mapping[int, Reconciled] | None
    ) -> list[MessagePlan]:
        parts = await self._spread(_plans, claimed, (reconciled,))
        return [plan for part in parts for plan in part]

    async def _spread(
        self,
        fn: Callable[..., tuple[Any, list[logging.LogRecord]]],
        claimed: Sequence[ClaimedMessage],
        extra: tuple[object, ...],
    ) -> list[Any]:
        loop = asyncio.get_running_loop()
        executor = self._executor
        try:
            answers = await asyncio.gather(
                *(
                    loop.run_in_executor(executor, fn, part, *extra)
                    for part in _slices(claimed, self._processes)
                )
            )
        except BrokenProcessPool:
            if executor is self._executor:  # one restart per broken pool
                log.error("a planning process ended unexpectedly: starting new ones")
                self._executor = self._start(self._source)
            raise
        self.planned += len(claimed)
        results = []
        for result, records in answers:
            for record in records:
                child_logs.handle(record)
            results.append(result)
        return results

    def close(self) -> None:
        """Stops the workers (a batch they hold is dropped: its lease brings it back)."""
        self._executor.shutdown(wait=True, cancel_futures=True)
