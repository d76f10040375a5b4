"""Readiness: is the journal writable, are the listeners bound, do the loop and workers run.

Touches: DB (one small write through the writer thread per check).

Each check is real and cheap: the journal check looks at the free space of an SQLite
journal's file system (under 1 MiB: full), then commits an update of this node's
``ready:<node>`` row in ``eai_meta`` through the writer thread (so a stopped writer, a
locked or full database, or a lost connection all fail it within ``timeout``); the loop
check runs a no-op on the engine's event loop (a loop blocked by a bug fails it); the
listener and worker checks read the engine's state.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, insert, update

from eai.store import utcnow
from eai.store.schema import meta

__all__ = ["MIN_FREE_BYTES", "EngineState", "Readiness", "readiness", "touch_ready_row"]

MIN_FREE_BYTES = 1 << 20
"""Below this, an SQLite journal's file system counts as full for readiness."""


def touch_ready_row(node: str) -> Callable[[Connection], None]:
    """The journal check's write: this node's row in ``eai_meta``, updated (created once)."""
    key = f"ready:{node}"[:64]

    def op(conn: Connection) -> None:
        at = utcnow().isoformat(timespec="seconds")
        done = conn.execute(update(meta).where(meta.c.key == key).values(value=at))
        if done.rowcount == 0:
            conn.execute(insert(meta).values(key=key, value=at))

    return op


@dataclass(frozen=True)
class EngineState:
    """What readiness reads from the running engine (given by :class:`eai.engine.Engine`)."""

    journal_write: Callable[[float], object]
    """Runs the journal check's write; returns after its commit, raises on failure or
    after the timeout (seconds)."""
    loop: asyncio.AbstractEventLoop
    listeners: Callable[[], Mapping[str, bool]]
    """Each configured listener: True once bound and serving."""
    workers: Callable[[], Mapping[str, bool]]
    """The pipeline, the scheduler, each delivery worker: True while running."""
    journal_dir: Path | None = None
    """The directory of an SQLite journal (None: PostgreSQL, on another host): with less
    than :data:`MIN_FREE_BYTES` left on its file system the journal is not writable, even
    while a small write still fits in the database's own free pages."""
    identity_server: Callable[[], bool | None] = lambda: None
    """False during an outage of the regional identity server (None: none configured).
    Exposed as a gauge, not a readiness check: messages are still acknowledged."""


def _loop_answers(loop: asyncio.AbstractEventLoop, timeout: float) -> str | None:
    done: concurrent.futures.Future[None] = concurrent.futures.Future()
    try:
        loop.call_soon_threadsafe(done.set_result, None)
    except RuntimeError:
        return "the event loop is closed"
    try:
        done.result(timeout)
    except concurrent.futures.TimeoutError:
        return f"the event loop did not answer within {timeout:g} s"
    return None


def _journal_writes(state: EngineState, timeout: float) -> str | None:
    if state.journal_dir is not None:
        try:
            st = os.statvfs(state.journal_dir)
        except OSError as exc:
            return f"journal directory unreadable: {exc.strerror}"
        free = st.f_bavail * st.f_frsize
        if free < MIN_FREE_BYTES:
            return f"no space left for the journal ({free} bytes free on its file system)"
    try:
        state.journal_write(timeout)
    except (TimeoutError, concurrent.futures.TimeoutError):
        return f"no journal commit within {timeout:g} s"
    except Exception as exc:  # noqa: BLE001 - any failure means "not writable"
        return f"journal write failed: {type(exc).__name__}: {exc}"[:300]
    return None


def _down(flags: Mapping[str, bool]) -> list[str]:
    return sorted(name for name, up in flags.items() if not up)


def readiness(state: EngineState, timeout: float) -> tuple[bool, dict[str, object]]:
    """(ready, detail): one entry per check, ``{"ok": bool, ...}``; ready when all are ok."""
    checks: dict[str, dict[str, object]] = {}
    problem = _journal_writes(state, timeout)
    checks["journal"] = {"ok": problem is None, **({"error": problem} if problem else {})}
    problem = _loop_answers(state.loop, timeout)
    checks["event_loop"] = {"ok": problem is None, **({"error": problem} if problem else {})}
    for check, flags in (("listeners", state.listeners()), ("workers", state.workers())):
        down = _down(flags)
        checks[check] = {"ok": not down, "running": sorted(set(flags) - set(down)), "down": down}
    ready = all(bool(c["ok"]) for c in checks.values())
    return ready, {"ready": ready, "checks": checks}


class Readiness:
    """:func:`readiness` for concurrent requests: one check runs at a time, and a request
    that waited for it takes the result of a check that started after it arrived (a flood
    of probes costs one journal write per check duration, and no answer is stale)."""

    def __init__(self, state: EngineState, timeout: float) -> None:
        self._state = state
        self._timeout = timeout
        self._lock = threading.Lock()
        self._last: tuple[float, tuple[bool, dict[str, object]]] | None = None

    def __call__(self) -> tuple[bool, dict[str, object]]:
        arrived = time.monotonic()
        with self._lock:
            if self._last is not None and self._last[0] >= arrived:
                return self._last[1]
            started = time.monotonic()
            result = readiness(self._state, self._timeout)
            self._last = (started, result)
            return result
