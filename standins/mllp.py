"""An MLLP peer for demos, tests and benchmarks: a threaded server answering each block.

Touches: network (binds 127.0.0.1 on an OS-chosen or given port).

Written independently of connectors/mllp (readuntil on the end block), so the engine is
checked against a peer that does not share its code. It answers AA by default, or what
``answer(payload)`` returns (None: no answer), after ``delay`` seconds, over TLS if given;
it runs its own event loop on a thread. :func:`msh10` and :func:`ack_for` build answers.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections.abc import Callable

SB, EB = b"\x0b", b"\x1c\r"


def msh10(payload: bytes) -> str:
    text = payload.replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    msh = text.split(b"\r", 1)[0]
    sep = msh[3:4] or b"|"
    fields = msh.split(sep)
    return fields[9].decode("latin-1") if len(fields) > 9 else ""


def ack_for(payload: bytes, code: str = "AA") -> bytes:
    cid = msh10(payload)
    return (
        b"MSH|^~\\&|SINK|SINK|EAI|EAI|20260101000000||ACK^A01^ACK|A"
        + cid.encode()
        + b"|P|2.5\rMSA|"
        + code.encode()
        + b"|"
        + cid.encode()
        + b"\r"
    )


class MllpPeer:
    """A threaded MLLP server. ``answer(payload) -> ack bytes | None`` (None: no answer),
    after ``delay`` seconds; over TLS with ``tls`` (a server context)."""

    def __init__(
        self,
        answer: Callable[[bytes], bytes | None] | None = None,
        port: int = 0,
        record: bool = True,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.answer = answer or (lambda p: ack_for(p, "AA"))
        self.tls = tls
        self.delay = 0.0
        """Seconds to wait before answering each message."""
        self.requested_port = port
        self.port = 0
        self.record = record
        self.received: list[bytes] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._writers: set[asyncio.StreamWriter] = set()

    def start(self) -> MllpPeer:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("peer did not start")
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)

        async def main() -> None:
            self._server = await asyncio.start_server(
                self._handle,
                "127.0.0.1",
                self.requested_port,
                limit=64 * 1024 * 1024,
                ssl=self.tls,
            )
            self.port = self._server.sockets[0].getsockname()[1]
            self._ready.set()
            async with self._server:
                try:
                    await self._server.serve_forever()
                except asyncio.CancelledError:
                    pass

        try:
            loop.run_until_complete(main())
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                try:
                    data = await reader.readuntil(EB)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                start = data.find(SB)
                payload = data[start + 1 : -2] if start >= 0 else data[:-2]
                if self.record:
                    with self._lock:
                        self.received.append(payload)
                if self.delay:
                    await asyncio.sleep(self.delay)
                ack = self.answer(payload)
                if ack is not None:
                    writer.write(SB + ack + EB)
                    await writer.drain()
        except asyncio.CancelledError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def control_ids(self) -> list[str]:
        with self._lock:
            return [msh10(p) for p in self.received]

    def wait_for(self, predicate: Callable[[MllpPeer], bool], timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.02)
        return predicate(self)

    def stop(self) -> None:
        loop = self._loop
        if loop is None or self._thread is None:
            return

        def _close() -> None:
            for w in list(self._writers):
                w.close()
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks(loop):
                task.cancel()

        loop.call_soon_threadsafe(_close)
        self._thread.join(10)
        self._thread = None

    def __enter__(self) -> MllpPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
