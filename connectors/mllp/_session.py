"""Serve one inbound MLLP connection: read blocks in order, answer each, enforce the timeouts.

Touches: network (one accepted socket).

Blocks on a connection are handled one after the other (read, journal, ACK,
next): while a block is being journaled nothing more is read, which is the
back-pressure a sender sees. Two timers protect the listener: ``idle_timeout``
(no byte at all) and ``frame_timeout`` (a started block must end in time, so a
sender trickling one byte per second cannot hold a connection for ever).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Protocol

from connectors.mllp._framing import FrameDecoder, FrameEvent, ProtocolError, frame
from connectors.mllp._inbound import Reply

__all__ = ["FrameSink", "Session"]

log = logging.getLogger("connectors.mllp.listener")

READ_SIZE = 64 * 1024


class FrameSink(Protocol):
    """What answers a connection's blocks (a :class:`~connectors.mllp._inbound.FrameHandler`,
    or the listener's per-connection view of it)."""

    async def on_event(self, event: FrameEvent, peer: str) -> Reply | None: ...


class Session:
    """One accepted connection of a listener; :meth:`run` returns when it is over."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        handler: FrameSink,
        *,
        listener: str,
        peer: str,
        max_message_bytes: int,
        idle_timeout: float,
        frame_timeout: float,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._handler = handler
        self._name = listener
        self.peer = peer
        self._max = max_message_bytes
        self._idle = idle_timeout
        self._frame = frame_timeout
        self._stopping = False
        self.busy = False
        """True while a block is being journaled and answered."""

    def request_stop(self) -> None:
        """Finish the block in hand (if any), then end."""
        self._stopping = True

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        decoder = FrameDecoder(self._max)
        seen_starts = 0
        frame_deadline: float | None = None
        while not self._stopping:
            timeout, reason = self._next_timeout(decoder, frame_deadline, loop.time())
            try:
                async with asyncio.timeout(timeout):
                    data = await self._reader.read(READ_SIZE)
            except TimeoutError:
                log.warning(
                    "listener %s: closing connection from %s: %s", self._name, self.peer, reason
                )
                return
            except (OSError, ssl.SSLError) as exc:
                log.info(
                    "listener %s: connection from %s failed: %s",
                    self._name,
                    self.peer,
                    type(exc).__name__,
                )
                return
            if not data:
                for event in decoder.eof():
                    await self._handler.on_event(event, self.peer)  # nobody to answer
                return
            events = decoder.feed(data)
            if decoder.frames_started != seen_starts:
                seen_starts = decoder.frames_started
                frame_deadline = loop.time() + self._frame if self._frame > 0 else None
            self.busy = True
            try:
                for event in events:
                    reply = await self._handler.on_event(event, self.peer)
                    if reply is not None and reply.ack is not None:
                        if not await self._write(reply.ack):
                            return
                    if self._stopping:
                        return
            finally:
                self.busy = False
            if decoder.junk_bytes > self._max:
                log.warning(
                    "listener %s: closing connection from %s: over %d bytes outside MLLP blocks",
                    self._name,
                    self.peer,
                    self._max,
                )
                await self._handler.on_event(ProtocolError("junk", decoder.junk_bytes), self.peer)
                return

    def _next_timeout(
        self, decoder: FrameDecoder, frame_deadline: float | None, now: float
    ) -> tuple[float | None, str]:
        idle = self._idle if self._idle > 0 else None
        if decoder.in_frame and frame_deadline is not None:
            left = max(frame_deadline - now, 0.0)
            if idle is None or left < idle:
                return left, f"MLLP block not completed within {self._frame:g} s"
        return idle, f"no data for {self._idle:g} s"

    async def _write(self, ack: bytes) -> bool:
        writer = self._writer
        writer.write(frame(ack))
        transport = writer.transport
        if not transport.is_closing() and not transport.get_write_buffer_size():
            return True  # all in the socket's buffer: nothing to wait for (the usual case)
        try:
            async with asyncio.timeout(self._idle if self._idle > 0 else None):
                await writer.drain()
        except TimeoutError:
            log.warning(
                "listener %s: closing connection from %s: ACK not read by the peer",
                self._name,
                self.peer,
            )
            return False
        except (OSError, ssl.SSLError) as exc:
            log.info(
                "listener %s: could not answer %s: %s", self._name, self.peer, type(exc).__name__
            )
            return False
        return True
