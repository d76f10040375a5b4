"""The engine's supervision endpoint: what ``/readyz`` reads of the running engine.

Touches: network and DB through :class:`eai.metrics.endpoint.MetricsEndpoint`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from eai._delivery_pool import DeliveryPool
from eai.config import Config, MetricsConfig
from eai.errors import Unavailable
from eai.reconciler import Reconciler
from eai.registry import Listener
from eai.store import Store, sqlite_file

if TYPE_CHECKING:
    from eai.metrics.endpoint import MetricsEndpoint

__all__ = ["start_endpoint"]


def _workers(
    tasks: list[asyncio.Task[None]], scheduler: AsyncIOScheduler, pool: DeliveryPool
) -> Callable[[], Mapping[str, bool]]:
    def running() -> Mapping[str, bool]:
        flags = {task.get_name(): not task.done() for task in list(tasks)}
        flags["scheduler"] = bool(scheduler.running)
        flags.update({f"delivery:{name}": up for name, up in pool.running().items()})
        return flags

    return running


def _sqlite_dir(store: Store) -> Path | None:
    """The directory of an SQLite journal file (None: PostgreSQL, or in memory)."""
    db = sqlite_file(store.engine.url)
    return None if db is None else db.absolute().parent


def _serving(listener: Listener) -> bool:
    """A listener that can say it is not serving for a while (one in its own process,
    between a death of that process and its replacement) says so; others serve."""
    return bool(getattr(listener, "serving", True))


def start_endpoint(
    metrics: MetricsConfig,
    config: Callable[[], Config],
    store: Store,
    node_id: str,
    listeners: Mapping[str, Listener],
    stopping: asyncio.Event,
    workers: tuple[list[asyncio.Task[None]], AsyncIOScheduler, DeliveryPool],
    reconciler: Reconciler | None,
) -> MetricsEndpoint:
    """Binds ``metrics.bind`` and serves it on its own threads (call once the listeners,
    the scheduler and the workers are started)."""
    # here: prometheus_client and cryptography.x509 (certificate gauges) load with the
    # endpoint, not with every engine
    from eai.metrics.endpoint import EngineState, MetricsEndpoint, touch_ready_row

    probe = touch_ready_row(node_id)

    def bound() -> Mapping[str, bool]:
        serving = not stopping.is_set()
        return {
            lc.name: serving and lc.name in listeners and _serving(listeners[lc.name])
            for lc in config().listeners
        }

    state = EngineState(
        journal_write=lambda timeout: store.writer.run_sync(probe, timeout),
        loop=asyncio.get_running_loop(),
        listeners=bound,
        workers=_workers(*workers),
        journal_dir=_sqlite_dir(store),
        identity_server=(
            (lambda: reconciler.outage_since is None) if reconciler is not None else lambda: None
        ),
    )
    try:
        endpoint = MetricsEndpoint(metrics, config(), store.engine, state)
    except OSError as exc:
        raise Unavailable(f"metrics.bind {metrics.bind}: {exc.strerror or exc}") from exc
    endpoint.start()
    return endpoint
