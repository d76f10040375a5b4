"""Shared pieces of the listener tests: a fake journal, a bounded runner, a running MLLP listener.

Messages: :func:`tests.engine_harness.adt`; the MLLP client and ACK readers: :mod:`tests._mllp`.

Touches: network (127.0.0.1 sockets opened by the tests).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from connectors.mllp import MllpListener, MllpListenerConfig
from eai.errors import StoreError
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
