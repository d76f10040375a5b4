"""An MLLP listener served in a process of its own (``own_process: true``).

Touches: processes (starts, watches and stops the listener's process).

The engine is one Python process: its listener, journal writer, pipeline and delivery
workers share one interpreter lock, so a busy feed's reading, sealing and committing
wait behind the planning and the sends of the messages before it. With ``own_process``
the listener runs in a child process (:mod:`connectors.mllp._child`): it opens the
journal with a connection of its own, commits each block and answers the sender there,
on the machine's other core; the engine's process keeps the pipeline and delivery, and
the journal is the buffer between the two.

What the engine still does for the listener: starts the process (``spawn``: a clean
interpreter) and waits until it listens; hands its log records to the engine's loggers
(handlers, levels and the no-patient-data filters apply as to its own records); counts
its reports in the listener's meters and the ``journal_failing`` alert, and wakes the
pipeline when new messages were committed. A process that dies is started again on the
same port (after 0.5 s, then longer while it keeps dying): every message it
acknowledged is committed; a block it had not answered is resent by its sender, and the
journal answers a retransmission with the stored ACK.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from connectors.mllp import _child
from connectors.mllp.listener import MllpListenerConfig
from eai import child_logs
from eai.ingest_report import IngestReport
from eai.net import run_blocking
from eai.registry import JournalHost

__all__ = ["OwnProcessListener"]

log = logging.getLogger("connectors.mllp.listener")

_SPAWN = multiprocessing.get_context("spawn")

START_TIMEOUT = 60.0
"""Seconds for a new process to import, open the journal and listen."""

STOP_MARGIN = 10.0
"""Seconds past the stop's grace before the process is killed."""

RESTART_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
"""Seconds before starting a dead process again, growing while it keeps dying."""

STEADY = 60.0
"""Seconds a process must have served for its death to restart the delays."""


@dataclass(eq=False)
class _Child:
    process: BaseProcess
    conn: Connection
    ready: asyncio.Future[int]
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    started: float = field(default_factory=time.monotonic)
    closing: bool = False


class OwnProcessListener:
    """Serves one :class:`MllpListenerConfig` in a child process (a registry ``Listener``)."""

    def __init__(self, config: MllpListenerConfig, host: JournalHost) -> None:
        self.config = config
        self._host = host
        self._child: _Child | None = None
        self._port: int | None = None
        self._stopping = False
        self._supervisor: asyncio.Task[None] | None = None
        self.restarts = 0
        """Processes started again after one died (tests, diagnostics)."""

    @property
    def port(self) -> int:
        """The bound port (the OS's choice when ``bind`` says port 0; kept by restarts)."""
        if self._port is None:
            raise RuntimeError(f"listener {self.config.name} is not listening")
        return self._port

    @property
    def pid(self) -> int | None:
        """The serving process's id (None while none serves: between a death and the
        moment its replacement listens)."""
        child = self._child
        if child is None or child.ended.is_set() or not child.ready.done():
            return None
        return child.process.pid if child.ready.exception() is None else None

    @property
    def serving(self) -> bool:
        """False between a death of the process and the moment its replacement listens
        (``/readyz`` then says the listener is down, so a load balancer sends elsewhere)."""
        return self.pid is not None

    async def start(self) -> None:
        """Starts the process; returns once it listens (OSError when it cannot)."""
        self._stopping = False
        child = await self._spawn(self.config.port)
        self._port = child.ready.result()
        log.info(
            "listener %s: MLLP%s on %s (port %d), in process %s",
            self.config.name,
            " over TLS" if self.config.tls is not None else "",
            self.config.bind,
            self._port,
            child.process.pid,
        )
        self._supervisor = asyncio.create_task(
            self._supervise(child), name=f"listener-process:{self.config.name}"
        )

    async def stop(self, grace: float) -> None:
        """Asks the process to stop (blocks in hand answered within ``grace`` s); kills
        it if it has not ended ``STOP_MARGIN`` s later."""
        self._stopping = True
        child = self._child
        if child is not None and not child.ended.is_set():
            child.closing = True
            try:
                child.conn.send(("stop", grace))
            except (OSError, ValueError):
                pass  # gone already
            try:
                await asyncio.wait_for(child.ended.wait(), grace + STOP_MARGIN)
            except TimeoutError:
                log.warning(
                    "listener %s: its process did not stop in %g s; killed",
                    self.config.name,
                    grace + STOP_MARGIN,
                )
        if child is not None:
            self._lost(child)
            await _reap(child)
        if self._supervisor is not None:
            self._supervisor.cancel()
            try:
                await self._supervisor
            except asyncio.CancelledError:
                pass
            self._supervisor = None

    # -- the process -----------------------------------------------------------

    async def _spawn(self, port: int) -> _Child:
        loop = asyncio.get_running_loop()
        ours, theirs = _SPAWN.Pipe()
        process = _SPAWN.Process(
            target=_child.main,
            args=(theirs, self.config, self._host.journal_access(), port, child_logs.levels()),
            name=f"eai-listener-{self.config.name}",
            daemon=True,  # ended at the engine's exit (SIGTERM, a stop) if stop() was not
        )
        try:
            process.start()
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()  # the child's copy: its end of file is the child's end
        child = _Child(process, ours, loop.create_future())
        loop.add_reader(ours.fileno(), self._readable, child)
        self._child = child
        try:
            await asyncio.wait_for(asyncio.shield(child.ready), START_TIMEOUT)
        except BaseException:
            child.closing = True
            self._lost(child)
            await _reap(child)
            if self._child is child:
                self._child = None
            raise
        return child

    def _readable(self, child: _Child) -> None:
        """On the loop, when the pipe has data: one message, or the process's end."""
        try:
            message = child.conn.recv()
        except (EOFError, OSError):
            self._lost(child)
            return
        kind = message[0]
        if kind == "report":
            self._apply(message[1])
        elif kind == "ready":
            if not child.ready.done():
                child.ready.set_result(int(message[1]))
        elif kind == "error":
            if not child.ready.done():
                child.ready.set_exception(OSError(str(message[1])))

    def _apply(self, report: IngestReport) -> None:
        for record in report.records:
            child_logs.handle(record)
        report.records = []
        self._host.journaled_elsewhere(self.config.name, report)

    def _lost(self, child: _Child) -> None:
        """The pipe is closed (or must be): the process ended or is being ended."""
        if child.conn.closed:
            return
        asyncio.get_running_loop().remove_reader(child.conn.fileno())
        child.conn.close()
        if not child.ready.done():
            child.ready.set_exception(
                OSError(f"listener {self.config.name}: its process ended before it listened")
            )
        child.ended.set()

    async def _supervise(self, child: _Child) -> None:
        """Starts the process again each time it dies, until :meth:`stop`."""
        failures = 0
        while True:
            await child.ended.wait()
            if self._stopping or child.closing:
                return
            await _reap(child)
            log.error(
                "listener %s: its process %s ended (exit code %s): starting a new one; "
                "what it acknowledged is in the journal, its senders resend the rest",
                self.config.name,
                child.process.pid,
                child.process.exitcode,
            )
            if time.monotonic() - child.started > STEADY:
                failures = 0
            while True:
                await asyncio.sleep(RESTART_DELAYS[min(failures, len(RESTART_DELAYS) - 1)])
                failures += 1
                if self._stopping:
                    return
                try:
                    child = await self._spawn(self.port)
                except OSError as exc:
                    log.error("listener %s: cannot start its process: %s", self.config.name, exc)
                    continue
                break
            self.restarts += 1
            log.warning(
                "listener %s: listening again on port %d, in process %s",
                self.config.name,
                self.port,
                child.process.pid,
            )


async def _reap(child: _Child) -> None:
    """Waits for the process to exit (kills it after a moment), then frees it."""
    process = child.process
    if process.pid is None:
        return
    try:
        await run_blocking(process.join, 5.0)
        if process.exitcode is None:
            process.kill()
            await run_blocking(process.join)
    except ValueError:
        pass  # closed already (reaped by another path)
