"""The engine's delivery workers, one per destination: started, woken, retired one by one.

Touches: DB and network (through the workers it starts).

A reload rebuilds a changed destination by retiring its worker (which finishes the
batch it holds: every row it leased is sent and recorded) before the new one starts, so
two workers never send one destination's rows at once and per-patient order holds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from eai.config import Config, DestinationConfig
from eai.delivery import DeliveryWorker
from eai.registry import build_destination
from eai.store import Store

__all__ = ["DeliveryPool"]

log = logging.getLogger(__name__)


class DeliveryPool:
    """``start(build(cfg))`` per destination; ``await retire(name)``; ``await close()``."""

    def __init__(self, store: Store, node_id: str, config: Config) -> None:
        self._store = store
        self._node = node_id
        self._engine = config.engine  # batches, lease, pacing: fixed until a restart
        self.workers: dict[str, DeliveryWorker] = {}
        self._stops: dict[str, asyncio.Event] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def build(self, dcfg: DestinationConfig) -> DeliveryWorker:
        """A worker for ``dcfg``, not started (the connector is built: it may raise)."""
        return DeliveryWorker(
            dcfg,
            build_destination(dcfg),
            self._store,
            self._node,
            window=self._engine.delivery_batch,
            lease=self._engine.lease,
            concurrency=dcfg.send_limits().connections,
            pace=self._engine.batch_wait,
        )

    def start(self, worker: DeliveryWorker) -> None:
        """Runs ``worker`` until it is retired or the pool closes."""
        stop = asyncio.Event()
        self.workers[worker.name] = worker
        self._stops[worker.name] = stop
        self._tasks[worker.name] = asyncio.create_task(
            worker.run(stop), name=f"delivery:{worker.name}"
        )

    def wake(self, destinations: Iterable[str]) -> None:
        for name in destinations:
            worker = self.workers.get(name)
            if worker is not None:
                worker.wake.set()

    def running(self) -> dict[str, bool]:
        """Each started worker: True while its task runs (read by ``/readyz``)."""
        return {name: not task.done() for name, task in list(self._tasks.items())}

    async def retire(self, name: str) -> None:
        """Stops the worker of ``name`` after the batch it holds, and closes its connector."""
        stop, task = self._stops.pop(name, None), self._tasks.pop(name, None)
        self.workers.pop(name, None)
        if stop is None or task is None:
            return
        stop.set()
        try:
            await task
        except Exception:  # noqa: BLE001 - the worker is gone either way
            log.exception("delivery worker %s failed while stopping", name)

    async def close(self) -> None:
        """Retires every worker (the engine is stopping)."""
        for stop in self._stops.values():
            stop.set()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._stops.clear()
        self._tasks.clear()
