"""The MLLP test client: its own framing (no code shared with connectors/mllp), ACK readers.

Touches: network (127.0.0.1 sockets opened by the tests).

One client, two faces over the same :class:`BlockReader`: :class:`MllpSender` blocks (for
tests driving an engine subprocess or thread), :class:`RawClient` is asyncio (for tests
running a listener in their own loop). Both can write any bytes and read whole blocks;
:func:`msa`, :func:`err_code` and :func:`segments` read the ACKs.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

SB, EB = b"\x0b", b"\x1c\r"


class MllpError(Exception):
    """The connection closed, timed out or spoke something that is not MLLP."""


def frame(payload: bytes) -> bytes:
    """``payload`` in one MLLP block."""
    return SB + payload + EB


class BlockReader:
    """Splits received bytes into block payloads (bytes before a start byte are skipped)."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> None:
        self._buf += data

    def pop(self) -> bytes | None:
        """The next whole block's payload, None if none is complete yet."""
        if EB not in self._buf:
            return None
        block, _, self._buf = self._buf.partition(EB)
        start = block.find(SB)
        if start < 0:
            raise MllpError(f"block without start byte: {block[:80]!r}")
        return block[start + 1 :]


def segments(ack: bytes) -> dict[str, list[str]]:
    """First occurrence of each segment of an ACK, split on ``|``."""
    out: dict[str, list[str]] = {}
    for seg in ack.strip(SB + EB).replace(b"\n", b"\r").split(b"\r"):
        if len(seg) >= 3:
            out.setdefault(seg[:3].decode("latin-1"), seg.decode("latin-1").split("|"))
    return out


def msa(ack: bytes) -> tuple[str, str]:
    """(MSA-1, MSA-2) of an ACK (framed or not)."""
    f = segments(ack).get("MSA")
    if f is None or len(f) < 3:
        raise MllpError(f"no MSA in {ack[:200]!r}")
    return f[1], f[2]


def err_code(ack: bytes) -> str:
    """ERR-3.1 of an ACK ("" without ERR)."""
    f = segments(ack).get("ERR")
    if f is None or len(f) < 4:
        return ""
    return f[3].split("~", 1)[0].split("^", 1)[0]


class MllpSender:
    """One blocking MLLP connection to 127.0.0.1:``port``; reconnect with :meth:`reset`."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.port = port
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self._blocks = BlockReader()

    def connect(self) -> None:
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
            self._blocks = BlockReader()

    def reset(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self._blocks = BlockReader()

    def send_raw(self, data: bytes) -> None:
        self.connect()
        assert self.sock is not None
        self.sock.sendall(data)

    def read_block(self, timeout: float | None = None) -> bytes:
        """The payload of the next MLLP block; MllpError on EOF, timeout or bad framing."""
        assert self.sock is not None
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while (block := self._blocks.pop()) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise MllpError("no ACK in time")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError as exc:
                raise MllpError("no ACK in time") from exc
            except OSError as exc:
                raise MllpError(f"connection failed: {exc}") from exc
            if not chunk:
                raise MllpError("connection closed")
            self._blocks.feed(chunk)
        return block

    def exchange(self, payload: bytes, timeout: float | None = None) -> bytes:
        """Send one message, return its ACK (MllpError/OSError when the engine is gone)."""
        try:
            self.send_raw(frame(payload))
        except OSError as exc:
            raise MllpError(f"cannot send: {exc}") from exc
        return self.read_block(timeout)

    def close(self) -> None:
        self.reset()

    def __enter__(self) -> MllpSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RawClient:
    """An asyncio MLLP connection: write any bytes, read whole blocks, see when the server
    closes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.blocks = BlockReader()

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
            while (block := self.blocks.pop()) is None:
                try:
                    data = await self.reader.read(65536)
                except (ConnectionError, OSError):
                    data = b""
                if not data:
                    return None
                self.blocks.feed(data)
        return block

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
