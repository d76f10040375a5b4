"""Serves the identity stand-in over HTTP/1.1 (h11) on asyncio, with TLS if given.

Touches: network (binds a server socket on ``host:port``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass, field
from http import HTTPStatus

import h11

from standins.identity._fhir import FHIR_JSON, StandinResponse, outcome
from standins.identity._service import StandinService

__all__ = ["StandinServer"]

log = logging.getLogger("standins.identity")

_MAX_BODY = 64 * 1024


@dataclass
class StandinServer:
    """Serves a :class:`StandinService` on ``host:port`` (port 0: chosen by the OS)."""

    service: StandinService
    host: str = "127.0.0.1"
    port: int = 0
    ssl_context: ssl.SSLContext | None = None
    idle_timeout: float = 30.0
    _server: asyncio.Server | None = field(default=None, init=False, repr=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False, repr=False)

    @property
    def bound_port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the stand-in is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        """The FHIR base URL to configure as ``identity.server.url``."""
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self.host}:{self.bound_port}{self.service.base}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._on_connection, self.host, self.port, ssl=self.ssl_context, reuse_address=True
        )
        log.info("identity stand-in listening on %s", self.url)

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks))
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> StandinServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=16 * 1024)
        try:
            while True:
                got = await self._request(conn, reader)
                if got is None:
                    return
                request, body = got
                if self.service.delay:
                    await asyncio.sleep(self.service.delay)
                headers = {
                    bytes(k).decode("latin-1").lower(): bytes(v).decode("latin-1")
                    for k, v in request.headers
                }
                if len(body) > _MAX_BODY:
                    answer = StandinResponse(413, outcome("too-costly", "body too large"))
                else:
                    answer = self.service.handle(
                        request.method.decode("ascii", "replace"),
                        request.target.decode("ascii", "replace"),
                        headers,
                        body,
                    )
                await self._answer(conn, writer, answer)
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except h11.RemoteProtocolError:
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                with contextlib.suppress(Exception):
                    bad = StandinResponse(400, outcome("invalid", "malformed HTTP request"))
                    await self._answer(conn, writer, bad, close=True)
        except (ConnectionError, ssl.SSLError, TimeoutError, h11.LocalProtocolError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
                async with asyncio.timeout(2):
                    await writer.wait_closed()

    async def _request(
        self, conn: h11.Connection, reader: asyncio.StreamReader
    ) -> tuple[h11.Request, bytes] | None:
        request: h11.Request | None = None
        parts: list[bytes] = []
        size = 0
        async with asyncio.timeout(self.idle_timeout):
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await reader.read(65536))
                elif isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    size += len(event.data)
                    if size <= _MAX_BODY + 1:
                        parts.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    assert request is not None
                    return request, b"".join(parts)
                else:  # ConnectionClosed
                    return None

    async def _answer(
        self,
        conn: h11.Connection,
        writer: asyncio.StreamWriter,
        answer: StandinResponse,
        *,
        close: bool = False,
    ) -> None:
        body = answer.encode()
        headers = [
            ("content-type", FHIR_JSON),
            ("content-length", str(len(body))),
            *answer.headers,
        ]
        if close:
            headers.append(("connection", "close"))
        response = h11.Response(
            status_code=answer.status, headers=headers, reason=HTTPStatus(answer.status).phrase
        )
        data = conn.send(response) or b""
        data += conn.send(h11.Data(data=body)) or b""
        data += conn.send(h11.EndOfMessage()) or b""
        writer.write(data)
        async with asyncio.timeout(10):
            await writer.drain()
