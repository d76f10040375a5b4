"""The forwarding process of one ``dicom`` destination: its loop, started by spawn.

Touches: network, files (through :mod:`dicom_router._store_scu`), the pipe to
the engine.

:class:`dicom_router.forward.DicomDestination` starts :func:`main` in a child
process (multiprocessing, "spawn") with one end of a pipe. Messages on the
pipe, pickled tuples:

- engine -> child: ``("send", id, payload)`` (``payload``: the delivery's
  :class:`~dicom_router.reference.InstanceRef` JSON), ``("close",)``;
- child -> engine: ``("result", id, kind, text)``, ``kind`` being ``"ok"``
  (``text``: the :class:`~eai.messages.DeliveryResult` detail), ``"permanent"``
  or ``"transient"`` (``text``: the error message); ``("log", record)``, a
  :class:`logging.LogRecord` of the child, message formatted, for the engine's
  logging (the child has no other handler).

The main thread reads the pipe and queues the sends; ``connections`` threads,
one per :class:`~dicom_router._store_scu.Link`, take them in order and answer
each; a reaper thread releases associations idle for ``idle_release``.
``("close",)`` or SIGTERM: the sends already queued are answered, the
associations released, then :func:`main` returns (exit 0). End of file on the
pipe (the engine is gone): associations not sending are released and the
process exits without waiting for the others. SIGINT is ignored: a Ctrl-C in
a terminal reaches the whole process group, and the engine stops its children.

The process lowers its CPU priority by the destination's ``nice`` (default 10):
when the CPUs are busy, the engine's listeners, whose peers wait for each
answer, come first; forwarding takes the rest and is retried anyway. On the
2-core benchmark host, one back-to-back A/B run gave 328 vs 303 images/s
received (``docs/benchmarks.md``: within the drift between runs, not proven).
"""

from __future__ import annotations

import copy
import logging
import os
import queue
import signal
import threading
from collections.abc import Mapping
from multiprocessing.connection import Connection
from types import FrameType
from typing import TYPE_CHECKING, Literal

from dicom_router._store_scu import Link, StoreScu
from dicom_router.reference import InstanceRef
from eai.errors import InputError, PermanentDeliveryError, TransientDeliveryError

if TYPE_CHECKING:
    from dicom_router.forward import DicomDestinationConfig

__all__ = ["Answer", "Request", "main"]

log = logging.getLogger("dicom_router.forward")

Request = tuple[Literal["send"], int, bytes] | tuple[Literal["close"]]
Answer = tuple[Literal["result"], int, str, str] | tuple[Literal["log"], logging.LogRecord]

_Job = tuple[int, bytes] | None  # None: no more jobs for this thread


class _Stop(Exception):
    """SIGTERM: stop as on ``("close",)``."""


class _Out:
    """The child's end of the pipe, written by every thread (one message at a time)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self.broken = False

    def send(self, message: Answer) -> None:
        with self._lock:
            if self.broken:
                return
            try:
                self._conn.send(message)
            except (OSError, ValueError):  # the engine is gone (or the pipe closed)
                self.broken = True

    def close(self) -> None:
        with self._lock:
            self.broken = True
            self._conn.close()


class _PipeHandler(logging.Handler):
    """Sends each record to the engine, formatted (as ``QueueHandler.prepare`` does)."""

    def __init__(self, out: _Out) -> None:
        super().__init__()
        self._out = out

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)  # the message, and the traceback if any
            record = copy.copy(record)
            record.message = record.msg = text
            record.args = None
            record.exc_info = None
            record.exc_text = None
            record.stack_info = None
            self._out.send(("log", record))
        except Exception:  # noqa: BLE001 - logging must not break a send
            self.handleError(record)


def _setup_logging(out: _Out, levels: Mapping[str, int]) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(_PipeHandler(out))
    for name, level in levels.items():
        logging.getLogger(name or None).setLevel(level)


def _deliver(scu: StoreScu, link: Link, payload: bytes) -> tuple[str, str]:
    try:
        ref = InstanceRef.from_json(payload)
    except InputError as exc:
        return "permanent", f"not a DICOM delivery: {exc.reason}"
    try:
        return "ok", scu.send(link, ref).detail
    except PermanentDeliveryError as exc:
        return "permanent", str(exc)
    except TransientDeliveryError as exc:
        return "transient", str(exc)
    except Exception as exc:  # noqa: BLE001 - a bug must not lose the answer
        log.exception("destination %s: unexpected error", scu.config.name)
        return "transient", f"internal error in the forwarding process: {type(exc).__name__}"


def _work(scu: StoreScu, link: Link, jobs: queue.SimpleQueue[_Job], out: _Out) -> None:
    while (job := jobs.get()) is not None:
        ident, payload = job
        kind, text = _deliver(scu, link, payload)
        out.send(("result", ident, kind, text))


def _reap(scu: StoreScu, stop: threading.Event) -> None:
    period = max(0.2, scu.config.idle_release / 2)
    while not stop.wait(period):
        scu.release_idle(scu.config.idle_release)


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise _Stop


def _read(conn: Connection, jobs: queue.SimpleQueue[_Job]) -> bool:
    """Queues the engine's sends until ``close`` or SIGTERM (True) or the pipe's end (False)."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        while True:
            request: Request = conn.recv()
            if request[0] != "send":
                return True
            jobs.put((request[1], request[2]))
    except _Stop:
        return True
    except (EOFError, OSError):
        return False
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # stopping already


def main(conn: Connection, config: DicomDestinationConfig, levels: Mapping[str, int]) -> None:
    """The forwarding process: serves ``conn`` until ``close``, SIGTERM or end of file."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = _Out(conn)
    _setup_logging(out, levels)
    if config.nice:
        try:
            os.nice(config.nice)
        except OSError as exc:  # not fatal: forwarding at the engine's priority
            log.warning("destination %s: cannot lower the priority: %s", config.name, exc)
    jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
    try:
        scu = StoreScu(config)
    except Exception as exc:  # noqa: BLE001 - e.g. a TLS key removed since the start
        log.error("destination %s: cannot forward: %s: %s", config.name, type(exc).__name__, exc)
        _refuse_all(conn, out, f"destination {config.name}: cannot forward: {exc}")
        return
    stop = threading.Event()
    workers = [
        threading.Thread(
            target=_work, args=(scu, link, jobs, out), name=f"forward-{i}", daemon=True
        )
        for i, link in enumerate(scu.links)
    ]
    reaper = threading.Thread(target=_reap, args=(scu, stop), name="forward-idle", daemon=True)
    for thread in (*workers, reaper):
        thread.start()
    orderly = _read(conn, jobs)
    stop.set()
    for _ in workers:
        jobs.put(None)
    if orderly:
        for thread in workers:
            thread.join()
    scu.release_idle(0.0)
    out.close()


def _refuse_all(conn: Connection, out: _Out, text: str) -> None:
    """Answers every send with ``text`` (transient) until the pipe's end."""
    try:
        while True:
            request: Request = conn.recv()
            if request[0] != "send":
                break
            out.send(("result", request[1], "transient", text))
    except (EOFError, OSError):
        pass
    out.close()
