"""The DICOM destination: C-STORE each spooled instance to a peer SCP, as it was received.

Touches: processes (one forwarding process per destination), and through it
network (outbound associations, optionally TLS) and files (spool files, TLS
certificates).

Registered as destination type ``dicom`` (for the e-m@ge regional imaging
routers, any Storage SCP). For each delivery:

1. read the reference (:class:`dicom_router.reference.InstanceRef`); the spool
   file is decrypted with the reference's data key and must authenticate and
   have the size and SHA-256 received (else: permanent failure, nothing sent);
2. without marking, the dataset bytes go out exactly as received, in their
   transfer syntax (the decrypted bytes after the File Meta Information, never
   decoded; the plaintext stays in memory); with the route's ``coerce``
   operations, pydicom reads the file, the operations are applied
   (:mod:`dicom_router.coercion`) and the dataset is encoded again in the same
   transfer syntax (elements pydicom did not decode are written back as they
   were). Never transcoded: the association proposes exactly the instance's SOP
   class with its transfer syntax;
3. associations are kept open and reused while sends keep coming (released
   after ``idle_release``); an instance whose (SOP class, transfer syntax) the
   open association lacks triggers a new one proposing it with the others;
4. verdict: 0x0000 and warnings (0x0001, 0xBxxx) delivered; connection refused,
   A-ASSOCIATE-RJ transient, A-ABORT, no answer within ``dimse_timeout``,
   0xA7xx (out of resources): :class:`TransientDeliveryError` (retried with
   backoff by the delivery worker); A-ASSOCIATE-RJ permanent, context not
   accepted, 0xA9xx, 0xCxxx and any other failure:
   :class:`PermanentDeliveryError` (dead letter; ``eai resend`` once fixed).

Steps 1 to 4 run in a separate process, on another core than the engine's
interpreter (the engine is CPU-bound under the GIL; reading, unsealing and
sending an image took CPU from the receiving side): :class:`DicomDestination`
starts it (multiprocessing, "spawn": the engine has threads, never fork) when
the delivery worker starts (``start``, so that the first image does not wait
for the child's imports) or at the next send after it ended, and passes
each delivery's payload (the reference, with its data key) and an id over a
pipe; :mod:`dicom_router._forward_child` runs the
process's loop and documents the messages, :mod:`dicom_router._store_scu` the
C-STORE itself (``connections`` associations at most, one thread each; 1
keeps the send order, the delivery worker keeps each study's order; each
association a :class:`dicom_router._requestor.Requestor`: a blocking socket
driven by that thread, DIMSE encoded by :mod:`dicom_router._dimse`, pynetdicom
only for the A-ASSOCIATE PDUs). The answers are read
on the event loop (``add_reader`` on the pipe, futures resolved by id) and
mapped back to a :class:`DeliveryResult` or the same errors; the child's log
records go to the engine's logging, under the same logger names.

If the forwarding process ends unexpectedly (crash, killed), every send in
flight fails as transient (the delivery worker retries it with backoff) and
the next send starts a new process. :meth:`DicomDestination.close` asks it to
finish the sends it holds and release its associations, and kills it after
``_CLOSE_GRACE`` seconds; it ends by itself when the engine is gone (end of
file on the pipe).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from dicom_router import _forward_child
from dicom_router._dest_config import DicomDestinationConfig
from dicom_router._forward_child import Answer, Request
from dicom_router._store_scu import store_verdict
from eai import child_logs
from eai.errors import PermanentDeliveryError, TransientDeliveryError
from eai.messages import MEDIA_DICOM_REF, DeliveryResult, OutboxItem
from eai.net import client_context, run_blocking

__all__ = ["DicomDestination", "DicomDestinationConfig", "store_verdict"]

log = logging.getLogger(__name__)

_CLOSE_GRACE = 5.0
"""Seconds the forwarding process gets to answer, release and exit before it is killed."""

_SPAWN = multiprocessing.get_context("spawn")


class _Child:
    """One forwarding process, its pipe and the sends it has not answered yet."""

    def __init__(self, process: BaseProcess, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.pending: dict[int, asyncio.Future[tuple[str, str]]] = {}
        self.ended = asyncio.Event()
        self.closing = False


class DicomDestination:
    """Delivers spooled instances to one Storage SCP (see the module docstring)."""

    def __init__(self, config: DicomDestinationConfig) -> None:
        self.config = config
        self.address = f"{config.ae_title}@{config.host}:{config.port}"
        if config.tls is not None:
            client_context(config.tls)  # a bad certificate or key fails the start, here
        self._child: _Child | None = None
        self._ids = itertools.count(1)
        self._reaping: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def pid(self) -> int | None:
        """The forwarding process's id, None when none runs."""
        return self._child.process.pid if self._child is not None else None

    async def start(self) -> None:
        """Starts the forwarding process ahead of the first send (its imports take ~0.4 s)."""
        if not self._closed and self._child is None:
            self._start()

    async def send(self, item: OutboxItem) -> DeliveryResult:
        if item.media_type != MEDIA_DICOM_REF:
            raise PermanentDeliveryError(
                f"destination {self.config.name} sends spooled DICOM instances, "
                f"not {item.media_type}"
            )
        if self._closed:
            raise TransientDeliveryError(f"destination {self.config.name} is closed")
        child = self._child or self._start()
        ident = next(self._ids)
        answer: asyncio.Future[tuple[str, str]] = asyncio.get_running_loop().create_future()
        child.pending[ident] = answer
        request: Request = ("send", ident, item.payload)
        try:
            child.conn.send(request)
        except (OSError, ValueError):
            self._lost(child)  # fails ``answer`` too
        try:
            kind, text = await answer
        finally:
            child.pending.pop(ident, None)
        if kind == "ok":
            return DeliveryResult(detail=text)
        if kind == "permanent":
            raise PermanentDeliveryError(text)
        raise TransientDeliveryError(text)

    async def close(self) -> None:
        """Stops the forwarding process (associations released); later sends fail as
        transient."""
        self._closed = True
        child, self._child = self._child, None
        if child is not None:
            child.closing = True
            close: Request = ("close",)
            try:
                child.conn.send(close)
            except (OSError, ValueError):
                pass  # gone already
            try:
                await asyncio.wait_for(child.ended.wait(), _CLOSE_GRACE)
            except TimeoutError:
                log.warning(
                    "destination %s: the forwarding process did not stop in %g s; killed",
                    self.config.name,
                    _CLOSE_GRACE,
                )
            self._lost(child)
            await self._reap(child)
        while self._reaping:
            await asyncio.gather(*self._reaping)

    # -- the forwarding process ------------------------------------------------

    def _start(self) -> _Child:
        ours, theirs = _SPAWN.Pipe()
        process = _SPAWN.Process(
            target=_forward_child.main,
            args=(theirs, self.config, child_logs.levels()),
            name=f"eai-forward-{self.config.name}",
            daemon=True,  # ended at exit (SIGTERM, answered as a close) if close() was not
        )
        try:
            process.start()
        except OSError as exc:
            ours.close()
            raise TransientDeliveryError(
                f"destination {self.config.name}: cannot start the forwarding process: {exc}"
            ) from exc
        finally:
            theirs.close()  # the child's copy only: its end of file is the child's end
        child = _Child(process, ours)
        asyncio.get_running_loop().add_reader(ours.fileno(), self._readable, child)
        self._child = child
        log.info("destination %s: forwarding process %s started", self.config.name, process.pid)
        return child

    def _readable(self, child: _Child) -> None:
        """On the loop, when the pipe has data: one answer or log record, or the end."""
        try:
            message: Answer = child.conn.recv()
        except (EOFError, OSError):
            self._lost(child)
            return
        if message[0] == "result":
            answer = child.pending.get(message[1])
            if answer is not None and not answer.done():
                answer.set_result((message[2], message[3]))
        else:
            child_logs.handle(message[1])

    def _lost(self, child: _Child) -> None:
        """The pipe is closed (or must be): fail the sends in flight as transient, and,
        unless ``close`` is stopping it, reap the process (whichever side saw the end
        first: the loop's reader, or a send whose write failed)."""
        if child.conn.closed:
            return
        asyncio.get_running_loop().remove_reader(child.conn.fileno())
        child.conn.close()
        if self._child is child:
            self._child = None
        why = "stopped" if child.closing else "ended unexpectedly"
        for answer in child.pending.values():
            if not answer.done():
                answer.set_exception(
                    TransientDeliveryError(
                        f"destination {self.config.name}: the forwarding process {why} "
                        "during the send"
                    )
                )
        child.pending.clear()
        child.ended.set()
        if not child.closing:
            task = asyncio.create_task(self._reap(child))
            self._reaping.add(task)
            task.add_done_callback(self._reaping.discard)

    async def _reap(self, child: _Child) -> None:
        """Waits for the process to exit (kills it after the grace), then frees it."""
        process = child.process
        await run_blocking(process.join, _CLOSE_GRACE)
        if process.exitcode is None:
            process.kill()
            await run_blocking(process.join)
        if not child.closing:
            log.warning(
                "destination %s: the forwarding process %s ended (exit code %s); "
                "sends in flight will be retried, the next one starts a new process",
                self.config.name,
                process.pid,
                process.exitcode,
            )
        process.close()
