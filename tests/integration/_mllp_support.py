"""Shared pieces of the MLLP tests: a fake journal, a raw MLLP test client, ACK readers.

Messages: :func:`tests.engine_harness.adt` (the national A01 with another header).

Touches: network (127.0.0.1 sockets opened by the tests).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from connectors.mllp import MllpListener, MllpListenerConfig
from connectors.mllp._framing import Frame, FrameDecoder, frame
from eai.errors import StoreError
from eai.hl7 import parse
from eai.messages import IngestResult, JournalEntry
from eai.store import content_lines

T = TypeVar("T")

TEST_TIMEOUT = 60.0


def run(coro: Coroutine[Any, Any, T], timeout: float = TEST_TIMEOUT) -> T:
    """Run one test coroutine in a fresh loop, bounded in time."""

    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


def msa(ack: bytes) -> tuple[str, str]:
    """(MSA-1, MSA-2) of an ACK payload."""
    m = parse(ack)
    return m.get("MSA-1"), m.get("MSA-2")


def err_code(ack: bytes) -> str:
    """ERR-3.1 of an ACK payload ("" without ERR)."""
    return parse(ack).get("ERR-3.1")


class FakeJournal:
    """In-memory ``ingest``: dedup on ``dedup_key`` (and content, with
    ``dedup_by_content``) like the real journal.

    ``gate`` (when set) holds every call until it is set; ``fail`` makes calls
    raise StoreError; ``crash`` makes them raise RuntimeError.
    """

    def __init__(self) -> None:
        self.entries: list[JournalEntry] = []
        self.by_key: dict[str, tuple[int, bytes]] = {}
        self.gate: asyncio.Event | None = None
        self.fail = False
        self.crash = False
        self.calls = 0

    async def __call__(self, entry: JournalEntry) -> IngestResult:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise StoreError("journal is not writable (test)")
        if self.crash:
            raise RuntimeError("unexpected bug (test)")
        key = entry.dedup_key
        reuses: int | None = None
        if key is not None and key in self.by_key:
            message_id, ack = self.by_key[key]
            if entry.dedup_by_content:  # same key: a retransmission only if same content
                key += "|" + content_lines(entry.payload).hex()
                if content_lines(self.entries[message_id - 1].payload) != content_lines(
                    entry.payload
                ):
                    reuses = message_id
            if key in self.by_key or reuses is None:
                message_id, ack = self.by_key.get(key, (message_id, ack))
                return IngestResult(message_id, duplicate=True, stored_ack=ack)
        self.entries.append(entry)
        message_id = len(self.entries)
        if key is not None:
            self.by_key[key] = (message_id, entry.ack)
        return IngestResult(message_id, reuses=reuses)

    @property
    def received(self) -> list[JournalEntry]:
        return [e for e in self.entries if e.status == "received"]

    @property
    def rejected(self) -> list[JournalEntry]:
        return [e for e in self.entries if e.status == "rejected"]


@asynccontextmanager
async def running_listener(
    ingest: Callable[[JournalEntry], Awaitable[IngestResult]], **fields: Any
) -> AsyncIterator[MllpListener]:
    fields.setdefault("name", "test")
    fields.setdefault("bind", "127.0.0.1:0")
    listener = MllpListener(MllpListenerConfig(**fields), ingest)
    await listener.start()
    try:
        yield listener
    finally:
        await listener.stop(2.0)


class RawClient:
    """A raw MLLP peer: write any bytes, read whole blocks, see when the server closes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = FrameDecoder(16 * 1024 * 1024)
        self.frames: list[bytes] = []

    @classmethod
    async def connect(cls, port: int, **kwargs: Any) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, **kwargs)
        return cls(reader, writer)

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send(self, payload: bytes) -> None:
        await self.send_raw(frame(payload))

    async def read_frame(self, timeout: float = 10.0) -> bytes | None:
        """The next block's payload; None when the server closed the connection."""
        async with asyncio.timeout(timeout):
            while not self.frames:
                try:
                    data = await self.reader.read(65536)
                except (ConnectionError, OSError):
                    data = b""
                if not data:
                    return None
                for event in self.decoder.feed(data):
                    if isinstance(event, Frame):
                        self.frames.append(event.payload)
        return self.frames.pop(0)

    async def exchange(self, payload: bytes, timeout: float = 10.0) -> bytes:
        await self.send(payload)
        ack = await self.read_frame(timeout)
        assert ack is not None, "connection closed instead of an ACK"
        return ack

    async def closed_by_server(self, timeout: float = 10.0) -> bool:
        """True when the server closes (EOF or reset) within ``timeout``; any block read is kept."""
        try:
            return await self.read_frame(timeout) is None
        except TimeoutError:
            return False

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass

    async def __aenter__(self) -> RawClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
