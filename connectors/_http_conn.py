"""One HTTP intake connection: TLS handshake, then requests read, checked and answered in turn.

Touches: network (one accepted connection), DB (through ``ingest``).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable

import h11

from connectors._http_answer import READ_CHUNK, Answer, journal_and_answer, linger, send, too_large
from connectors._http_auth import Authenticator, CertSubject, Refusal
from connectors._http_config import HttpListenerConfig
from connectors._http_head import BadFraming, check_head, head_end
from connectors._http_oauth import Jwks
from eai.cda_schema import CdaSchema
from eai.net import close_stream, server_handshake
from eai.registry import Ingest

__all__ = ["XML_TYPES", "ConnectionHandler"]

# The listener's logger: operators and tests filter on connectors.http_in.
log = logging.getLogger("connectors.http_in")

XML_TYPES = ("application/xml", "text/xml")
_MAX_HEADER_BYTES = 16 * 1024


class _Timeout(Exception):
    """The peer was too slow (``idle``: no request started)."""

    def __init__(self, idle: bool) -> None:
        self.idle = idle


class ConnectionHandler:
    """Serves the connections of one listener; the listener sets ``schema`` and ``tls``
    at start and ``stopping`` at stop, and is told through ``busy`` while a request is
    being journaled."""

    def __init__(
        self,
        config: HttpListenerConfig,
        ingest: Ingest,
        auth: Authenticator,
        jwks: Jwks | None,
        busy: Callable[[bool], None],
    ) -> None:
        self.config = config
        self.schema: CdaSchema | None = None
        self.tls: ssl.SSLContext | None = None
        self.stopping = False
        self._ingest = ingest
        self._auth = auth
        self._jwks = jwks
        self._busy = busy

    async def serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        if self.tls is not None and not await self._handshake(writer, peer):
            await close_stream(writer)
            return
        buffer = bytearray()  # bytes received and not parsed yet (a pipelined request)
        try:
            cert = _client_subject(writer)
            while not self.stopping:
                # One h11 connection per request: it only ever sees a head checked here.
                conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEADER_BYTES)
                answer = await self._one_request(conn, buffer, reader, writer, peer, cert)
                if answer is None:
                    return
                await send(
                    conn, writer, answer, closing=self.stopping, timeout=self.config.read_timeout
                )
                self._busy(False)
                if conn.their_state is not h11.DONE:
                    await linger(reader, writer)  # answered before the request ended
                    return
                if conn.our_state is not h11.DONE:
                    return
                buffer = bytearray(conn.trailing_data[0])
        except (ConnectionError, ssl.SSLError, TimeoutError, h11.LocalProtocolError) as exc:
            log.debug("listener %s: connection from %s ended: %s", self.config.name, peer, exc)
        except Exception:  # noqa: BLE001 - one connection never takes the listener down
            log.exception("listener %s: connection from %s failed", self.config.name, peer)
        finally:
            await close_stream(writer)

    async def _handshake(self, writer: asyncio.StreamWriter, peer: str) -> bool:
        """The server side of the TLS handshake, within ``read_timeout``; False when it failed."""
        assert self.tls is not None
        return await server_handshake(
            writer,
            self.tls,
            self.config.read_timeout,
            listener=self.config.name,
            peer=peer,
            logger=log,
            level=logging.INFO,
        )

    async def _one_request(
        self,
        conn: h11.Connection,
        buffer: bytearray,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: str,
        cert: CertSubject | None,
    ) -> Answer | None:
        """Reads one request and decides its answer; None: close without answering."""
        cfg = self.config
        try:
            deadline = await self._read_head(buffer, reader)
            if deadline is None:
                return None  # closed or idle before a whole head arrived
            conn.receive_data(bytes(buffer))
            event = conn.next_event()
            while event is h11.NEED_DATA:  # not expected: the head is whole
                conn.receive_data(await _read(reader, deadline, idle=False))
                event = conn.next_event()
            if not isinstance(event, h11.Request):
                return None
            authorization = _headers(event, b"authorization")
            sender = self._auth.sender(cert, authorization)
            if isinstance(sender, Refusal) and sender.unknown_key and self._jwks is not None:
                if await self._jwks.refresh():  # the issuer may have rotated its keys
                    sender = self._auth.sender(cert, authorization)
            if isinstance(sender, Refusal):
                log.info("listener %s: request from %s refused: %s", cfg.name, peer, sender.reason)
                extra = [(b"www-authenticate", sender.challenge)] if sender.challenge else []
                return Answer(sender.status, {"error": sender.reason}, extra, close=True)
            early = self._check_request(event)
            if early is not None:
                return early
            if conn.they_are_waiting_for_100_continue:
                writer.write(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
            body = await self._read_body(conn, reader, deadline)
            if isinstance(body, Answer):
                return body
            self._busy(True)  # from here, stop() lets the journaling finish within its grace
            who = f"{peer} ({sender})" if sender else peer
            return await journal_and_answer(cfg.name, body, who, self.schema, self._ingest)
        except BadFraming as exc:
            log.info("listener %s: bad HTTP from %s: %s", cfg.name, peer, exc.reason)
            return Answer(
                exc.status, {"error": f"malformed HTTP request: {exc.reason}"}, close=True
            )
        except _Timeout as exc:
            if exc.idle:
                return None
            log.info("listener %s: request from %s timed out", cfg.name, peer)
            return Answer(408, {"error": "request not received whole in time"}, close=True)
        except h11.RemoteProtocolError as exc:
            # h11 may quote the offending bytes after a colon: keep only the kind of error.
            problem = str(exc).split(":", 1)[0].strip()[:100] or "protocol error"
            log.info("listener %s: bad HTTP from %s: %s", cfg.name, peer, problem)
            if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
                return None
            hint = exc.error_status_hint
            status = hint if 400 <= hint < 500 or hint == 501 else 400
            return Answer(status, {"error": f"malformed HTTP request: {problem}"}, close=True)

    async def _read_head(self, buffer: bytearray, reader: asyncio.StreamReader) -> float | None:
        """Reads into ``buffer`` until it starts with a whole request head, capped and
        checked (:class:`BadFraming`); returns the request's deadline, None on EOF or
        when the connection stayed idle. Raises :class:`_Timeout` for a slow head."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        idle = cfg.idle_timeout if cfg.idle_timeout > 0 else None
        deadline: float | None = loop.time() + idle if idle is not None else None
        if buffer:  # a pipelined request already buffered
            deadline = loop.time() + cfg.read_timeout
        started = bool(buffer)
        while (end := head_end(buffer, _MAX_HEADER_BYTES)) is None:
            data = await _read(reader, deadline, idle=not started)
            if not data:
                return None
            if not started:
                started = True
                deadline = loop.time() + cfg.read_timeout
            buffer += data
        check_head(buffer[:end])
        return deadline if deadline is not None else loop.time() + cfg.read_timeout

    def _check_request(self, request: h11.Request) -> Answer | None:
        """Path, method, Content-Type and declared length, before any body is read."""
        cfg = self.config
        target = request.target.decode("ascii", "replace").split("?", 1)[0]
        if target != cfg.path:
            return Answer(
                404, {"error": f"not found: documents are posted to {cfg.path}"}, close=True
            )
        if request.method != b"POST":
            return Answer(
                405,
                {"error": "method not allowed: use POST"},
                headers=[(b"allow", b"POST")],
                close=True,
                head=request.method == b"HEAD",
            )
        content_type = _header(request, b"content-type")
        media = content_type.split(b";", 1)[0].strip().lower().decode("ascii", "replace")
        if media not in XML_TYPES:
            shown = media or "none"
            return Answer(
                415,
                {"error": f"Content-Type {shown} not accepted: use application/xml or text/xml"},
                close=True,
            )
        length = _header(request, b"content-length")
        if length.isdigit() and int(length) > cfg.max_body_bytes:
            return Answer(413, too_large(cfg.max_body_bytes), close=True)
        return None

    async def _read_body(
        self, conn: h11.Connection, reader: asyncio.StreamReader, deadline: float | None
    ) -> bytes | Answer:
        cap = self.config.max_body_bytes
        parts: list[bytes] = []
        size = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await _read(reader, deadline, idle=False))
                continue
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > cap:
                    return Answer(413, too_large(cap), close=True)
                parts.append(bytes(event.data))
                continue
            if isinstance(event, h11.EndOfMessage):
                return b"".join(parts)
            raise h11.RemoteProtocolError("connection closed before the body ended", 400)


def _header(request: h11.Request, name: bytes) -> bytes:
    for key, value in request.headers:
        if key == name:
            return bytes(value).strip()
    return b""


def _headers(request: h11.Request, name: bytes) -> list[bytes]:
    return [bytes(value) for key, value in request.headers if key == name]


async def _read(reader: asyncio.StreamReader, deadline: float | None, *, idle: bool) -> bytes:
    try:
        async with asyncio.timeout_at(deadline):
            return await reader.read(READ_CHUNK)
    except TimeoutError:
        raise _Timeout(idle) from None


def _client_subject(writer: asyncio.StreamWriter) -> CertSubject | None:
    """The subject of the client certificate, when TLS verified one (None otherwise)."""
    ssl_object = writer.get_extra_info("ssl_object")
    if not isinstance(ssl_object, ssl.SSLObject):
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return CertSubject.from_der(der) if der else None
