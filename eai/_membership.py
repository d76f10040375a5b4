"""This engine process among the nodes sharing a PostgreSQL journal: it registers, beats,
releases the leases of dead nodes, and runs the periodic jobs only when it leads.

Touches: DB (its own connections, on a heartbeat thread and on worker threads).

See :mod:`eai.store` (``eai_nodes``): the lease owner id is unique per process, so no
configuration makes two processes share leases; a configured ``engine.node_id`` that a
live node already uses is refused at start-up. On SQLite (one engine per journal, held
by ``eai.lock``) none of this runs: every lease in the journal was this engine's.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import Connection

from eai.errors import StoreError
from eai.net import run_blocking
from eai.store import (
    DEAD_AFTER,
    HEARTBEAT_EVERY,
    LiveNode,
    Store,
    clear_leases,
    heartbeat,
    is_leader,
    lease_owner_id,
    live_named,
    register_node,
    release_dead,
    release_job_lock,
    try_job_lock,
    unregister_node,
)

__all__ = ["Membership"]

log = logging.getLogger(__name__)

Job = Callable[..., Awaitable[Any]]


class Membership:
    """``name``: the node's name (``engine.node_id`` or the host name); ``explicit``:
    the name was configured (then no two live nodes may hold it)."""

    def __init__(self, store: Store, name: str, explicit: bool) -> None:
        self._store = store
        self.name = name
        self.explicit = explicit
        self.owner = lease_owner_id(name)
        self.shared = not store.is_sqlite
        self.on_dead: Callable[[], None] = lambda: None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.released: list[str] = []
        """Ids of the dead nodes whose leases this node released."""

    async def join(self) -> None:
        """Registers this process (PostgreSQL) and starts its heartbeat; or clears every
        lease (SQLite). Waits for a node of the same configured name that stops beating
        (a process killed just before this restart), refuses one that keeps beating."""
        if not self.shared:
            await self._store.writer.run(lambda c: clear_leases(c, None))
            return
        deadline = time.monotonic() + DEAD_AFTER + 2 * HEARTBEAT_EVERY
        while (other := await run_blocking(self._register)) is not None:
            if time.monotonic() > deadline:
                raise StoreError(
                    f"engine.node_id {self.name} is used by a live node (host {other.host}, "
                    f"pid {other.pid}): give each node its own node_id, or none"
                )
            await asyncio.sleep(HEARTBEAT_EVERY / 2)
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._beat, name="eai-heartbeat", daemon=True)
        self._thread.start()
        log.info("node %s joined as %s", self.name, self.owner)

    def _register(self) -> LiveNode | None:
        with self._store.engine.begin() as conn:
            if self.explicit and (other := live_named(conn, self.name)) is not None:
                return other
            register_node(conn, self.owner, self.name)
            self._note(release_dead(conn))
        return None

    def _note(self, dead: list[str]) -> None:
        if not dead:
            return
        self.released.extend(dead)
        log.warning("node(s) %s stopped beating: their leases are released", ", ".join(dead))
        if self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(self.on_dead)
            except RuntimeError:
                pass  # the loop is closed: the engine is stopping

    def _beat(self) -> None:
        """The heartbeat thread (not the shared worker pool: a busy pool must not make
        this node look dead)."""
        failing = False
        while not self._stop.wait(HEARTBEAT_EVERY):
            try:
                with self._store.engine.begin() as conn:
                    if not heartbeat(conn, self.owner, self.name):
                        log.warning(
                            "node %s: heartbeat later than %g s; other nodes took this one "
                            "for dead and may send its in-flight work again",
                            self.owner,
                            DEAD_AFTER,
                        )
                    dead = release_dead(conn)
            except Exception as exc:  # noqa: BLE001 - the database may be away: beat again
                if not failing:
                    log.warning("node heartbeat failed (%s); retrying", type(exc).__name__)
                failing = True
                continue
            if failing:
                log.info("node heartbeat works again")
                failing = False
            self._note(dead)

    async def leave(self) -> None:
        """A clean stop: the heartbeat ends, this node's leases and row go."""
        if self._thread is None:
            return
        self._stop.set()
        await run_blocking(self._thread.join, 5.0)
        self._thread = None

        def bye() -> None:
            with self._store.engine.begin() as conn:
                clear_leases(conn, self.owner)
                unregister_node(conn, self.owner)

        try:
            await run_blocking(bye)
        except Exception:  # noqa: BLE001 - the others release it after DEAD_AFTER
            log.warning("node %s: could not unregister", self.owner, exc_info=True)

    def once(self, name: str, job: Job) -> Job:
        """``job`` run on one node only: the leader (the oldest live node), under an
        advisory try-lock named after it (two nodes never run it at the same time,
        even while leadership moves). On SQLite: ``job`` as it is."""
        if not self.shared:
            return job

        async def guarded(*args: Any, **kwargs: Any) -> Any:
            conn = await run_blocking(self._lead, name)
            if conn is None:
                return None
            try:
                return await job(*args, **kwargs)
            finally:
                await run_blocking(_unlock, conn, name)

        return guarded

    def _lead(self, name: str) -> Connection | None:
        conn = self._store.engine.connect()
        try:
            if is_leader(conn, self.owner) and try_job_lock(conn, name):
                conn.commit()  # the session lock stays; no transaction stays open
                return conn
            conn.rollback()
        except Exception:
            conn.close()
            raise
        conn.close()
        return None


def _unlock(conn: Connection, name: str) -> None:
    try:
        release_job_lock(conn, name)
        conn.commit()
    finally:
        conn.close()
