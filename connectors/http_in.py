"""The HTTP intake listener: a CDA document ``POST``ed, answered 202 with its id after the commit.

Touches: network (binds a server socket), files (TLS certificates and the CDA
schema, at start), DB (through ``ingest``).

Registered as listener type ``http``. HTTP/1.1 framing is h11's (a
sans-I/O parser, strict about request lines, headers, Content-Length and
chunked bodies, used by httpx and uvicorn); the sockets, TLS, timeouts and
limits are asyncio streams here, as in the MLLP listener.

``POST <path>`` with an XML body (``Content-Type: application/xml`` or
``text/xml``) is examined on a worker thread (hardened parsing, CDA, schema)
and journaled; the answer is JSON:

=====  ===========================================================  =========
code   when                                                          journaled
=====  ===========================================================  =========
202    journaled as received: ``{"message_id": N}``                  received
401    ``api_keys`` set and no valid ``Authorization: Bearer`` key    no
       (``WWW-Authenticate: Bearer``); 403: a client certificate
       outside ``allowed_subjects`` and no keys configured
400    not well-formed, or refused (XXE, entities, external DTD,     rejected
       XInclude, depth): ``{"error": reason, "message_id": N}``
400    ambiguous framing (Content-Length with Transfer-Encoding,     no
       Content-Length twice, obs-fold, bare CR/LF: RFC 9112), then
       the connection is closed; 431 a head over 16 KiB
422    XML but not a CDA, or not valid against the schema:           rejected
       ``{"error", "errors": [{"line", "message"}], "message_id"}``
413    body above ``max_body_bytes`` (Content-Length or as read)     no
415    Content-Type missing or not application/xml / text/xml        no
404    another path; 405 another method on the path (``Allow``)      no
500    an unexpected failure while journaling                       unknown
408    the request did not arrive whole within ``read_timeout``      no
503    the journal cannot be written (``Retry-After``), or too       no
       many connections
=====  ===========================================================  =========

The same bytes posted again get the first message id (``"duplicate": true``).
Logs carry peers, sizes, ids and outcomes, never document content.

Who may send (:mod:`connectors._http_auth`): a connection from outside
``allowed_networks`` is closed before a byte is read; with ``api_keys`` or
``allowed_subjects``, each request must carry a listed bearer key or come over
a connection whose client certificate subject is listed. The sender (``key
lab-x``, ``cert CN=...``) is journaled with the peer address. Each request is
parsed by a fresh h11 connection fed a head already capped and checked by
:mod:`connectors._http_head`; a connection is kept open only after a request
whose framing left no doubt.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import ssl
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal, Self

import h11
import httpx
from pydantic import Field, field_validator, model_validator

from connectors import _http_exposure  # noqa: F401 - registers its eai check
from connectors._cda_intake import MIB, CdaIntakeConfig, Verdict, examine, journal_entry, schema_for
from connectors._http_auth import ApiKey, Authenticator, CertSubject, Refusal, check_keys
from connectors._http_head import BadFraming, check_head, head_end
from connectors._http_oauth import Jwks, OAuth2Config
from eai.cda_schema import CdaSchema
from eai.config import Duration, TlsServerConfig
from eai.errors import ConfigError, ConfigIssue, StoreError
from eai.messages import MEDIA_CDA_XML
from eai.net import (
    LogThrottle,
    StreamServer,
    address_allowed,
    check_networks,
    close_stream,
    parse_networks,
    peer_host,
    peer_name,
    run_blocking,
    server_context,
    server_handshake,
    split_bind,
)
from eai.registry import Ingest, ListenerSpec, register_listener

__all__ = ["HttpListener", "HttpListenerConfig"]

log = logging.getLogger(__name__)

XML_TYPES = ("application/xml", "text/xml")
_READ_CHUNK = 64 * 1024
_MAX_HEADER_BYTES = 16 * 1024
_LINGER_SECONDS = 1.0  # after an early answer: how long, and how much, to read and discard
_LINGER_BYTES = 1024 * 1024
_SERVER = b"eai"


class HttpListenerConfig(CdaIntakeConfig):
    """An HTTP(S) endpoint receiving CDA R2 documents by ``POST``."""

    type: Literal["http"] = Field(
        default="http", description="listener type: CDA documents posted over HTTP(S)"
    )
    bind: str = Field(
        description="address and port to listen on, host:port (port 0: chosen by the OS)",
        examples=["0.0.0.0:8443", "127.0.0.1:8080"],
    )
    path: str = Field(
        default="/cda",
        pattern=r"^/[A-Za-z0-9._~/-]*$",
        description="the one request path documents are posted to",
        examples=["/cda", "/intake/cda"],
    )
    max_body_bytes: int = Field(
        default=20 * MIB,
        gt=0,
        description="largest accepted body; a bigger one is answered 413 and not stored",
        examples=[20 * MIB],
    )
    max_connections: int = Field(
        default=64, ge=1, description="simultaneous connections; one more is answered 503"
    )
    idle_timeout: Duration = Field(
        default=30.0,
        description="close a kept-alive connection that starts no request for this long (0: never)",
        examples=["30s"],
    )
    read_timeout: Duration = Field(
        default=60.0,
        gt=0,
        description="a request (headers and body) must arrive whole within this from its first "
        "byte, else 408; also bounds the TLS handshake and writing the answer",
        examples=["60s"],
    )
    tls: TlsServerConfig | None = Field(
        default=None,
        description="serve HTTPS; client_ca verifies client certificates "
        "(require_client_cert: mandatory)",
    )
    allowed_networks: tuple[str, ...] = Field(
        default=(),
        description="source addresses or CIDR networks allowed to connect; a connection from "
        "elsewhere is closed before anything is read (empty: any address)",
        examples=[["10.1.2.0/24", "192.0.2.7"]],
    )
    api_keys: tuple[ApiKey, ...] = Field(
        default=(),
        description="bearer keys accepted (Authorization: Bearer <key>), each stored as its "
        "SHA-256 with the name recorded as the sender; set: a request without one of them "
        "(or an allowed client certificate) is answered 401",
        examples=[[{"name": "lab-x", "sha256": "<64 hex digits>"}]],
    )
    allowed_subjects: tuple[str, ...] | None = Field(
        default=None,
        min_length=1,
        description="client certificate subjects accepted (needs tls.client_ca): the common "
        "name, or the whole DN in RFC 4514 form (CN=gam.chu-x,O=CHU X,C=FR); set: a request "
        "over a connection without one of them (or a valid api key) is refused",
        examples=[["gam.chu-x", "CN=lis.lab-y,O=Labo Y,C=FR"]],
    )

    oauth2: OAuth2Config | None = Field(
        default=None,
        description="accept OAuth2 access tokens (JWT, client credentials) from this issuer as "
        "bearer, checked against its published keys; the client id is recorded as the sender",
    )

    @field_validator("bind")
    @classmethod
    def _check_bind(cls, value: str) -> str:
        split_bind(value)
        return value

    @field_validator("allowed_networks")
    @classmethod
    def _check_networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return check_networks(value)

    @field_validator("api_keys")
    @classmethod
    def _check_keys(cls, value: tuple[ApiKey, ...]) -> tuple[ApiKey, ...]:
        return check_keys(value)

    @model_validator(mode="after")
    def _subjects_need_verified_certificates(self) -> Self:
        if self.allowed_subjects is not None and (self.tls is None or self.tls.client_ca is None):
            raise ValueError(
                "allowed_subjects needs tls with client_ca: only a certificate verified "
                "against that CA says who the client is"
            )
        return self


@dataclass(slots=True)
class _Answer:
    status: int
    body: dict[str, Any]
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    close: bool = False
    head: bool = False  # answering a HEAD request: headers only


class _Timeout(Exception):
    """The peer was too slow (``idle``: no request started)."""

    def __init__(self, idle: bool) -> None:
        self.idle = idle


class HttpListener:
    """Serves one :class:`HttpListenerConfig`; journals through ``ingest`` before answering."""

    def __init__(self, config: HttpListenerConfig, ingest: Ingest) -> None:
        self.config = config
        self._ingest = ingest
        self._schema: CdaSchema | None = None
        self._server = StreamServer(config.name, log)
        self._tasks: dict[asyncio.Task[None], bool] = {}  # task -> busy with a request
        self._stopping = False
        host, port = split_bind(config.bind)
        self._host, self._port = host, port
        self._networks = parse_networks(config.allowed_networks)
        self._jwks = Jwks(config.oauth2) if config.oauth2 is not None else None
        self._tls: ssl.SSLContext | None = None
        self._refusals = LogThrottle()  # WARNING once a minute per refused address, else DEBUG
        self._auth = Authenticator(
            config.api_keys,
            config.allowed_subjects,
            certificates_verified=config.tls is not None and config.tls.client_ca is not None,
            jwks=self._jwks,
        )

    @property
    def port(self) -> int:
        """The bound port (the OS's choice when ``bind`` says port 0)."""
        return self._server.port

    async def start(self) -> None:
        """Loads the schema and TLS context, binds; returns once bound."""
        cfg = self.config
        self._stopping = False
        self._schema = await run_blocking(schema_for, cfg)
        if self._jwks is not None:
            await self._load_jwks()
        ctx: ssl.SSLContext | None = server_context(cfg.tls) if cfg.tls is not None else None
        self._tls = ctx
        # TLS is started by the connection's task, once admitted: an address outside
        # allowed_networks is closed before its ClientHello is read.
        await self._server.start(self._on_connection, self._host, self._port)
        log.info(
            "listener %s: HTTP%s POST %s on %s (port %d, schema %s)",
            cfg.name,
            "S" if ctx else "",
            cfg.path,
            cfg.bind,
            self.port,
            "on" if self._schema is not None else "off",
        )

    async def _load_jwks(self) -> None:
        """The issuer's keys, before the first request (ConfigError when they cannot load)."""
        assert self._jwks is not None and self.config.oauth2 is not None
        oauth = self.config.oauth2
        where = str(oauth.jwks_file or oauth.jwks_url)
        try:
            await self._jwks.load()
        except (OSError, ValueError, httpx.HTTPError) as exc:
            issue = ConfigIssue(where, 0, 0, f"listener {self.config.name}: oauth2 keys: {exc}")
            raise ConfigError([issue]) from exc

    async def stop(self, grace: float) -> None:
        """Stops accepting; requests being journaled are answered within ``grace`` s."""
        self._stopping = True
        if not self._server.close():
            return
        for task, busy in list(self._tasks.items()):
            if not busy:
                task.cancel()
        await self._server.finish(list(self._tasks), grace, "request(s)")

    def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = peer_name(writer)
        host = peer_host(writer)
        if not address_allowed(self._networks, host):
            log.log(
                self._refusals.level(host),
                "listener %s: connection from %s refused: address not in allowed_networks",
                self.config.name,
                peer,
            )
            task = asyncio.create_task(close_stream(writer), name=f"http-refuse:{peer}")
        elif self._stopping or len(self._tasks) >= self.config.max_connections:
            log.warning(
                "listener %s: refused connection from %s: %s",
                self.config.name,
                peer,
                "stopping" if self._stopping else f"{self.config.max_connections} already open",
            )
            task = asyncio.create_task(_refuse(writer), name=f"http-refuse:{peer}")
        else:
            task = asyncio.create_task(self._serve(reader, writer, peer), name=f"http:{peer}")
        self._tasks[task] = False
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)

    def _busy(self, busy: bool) -> None:
        task = asyncio.current_task()
        if task is not None and task in self._tasks:
            self._tasks[task] = busy

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        if self._tls is not None and not await self._handshake(writer, peer):
            await close_stream(writer)
            return
        buffer = bytearray()  # bytes received and not parsed yet (a pipelined request)
        try:
            cert = _client_subject(writer)
            while not self._stopping:
                # One h11 connection per request: it only ever sees a head checked here.
                conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEADER_BYTES)
                answer = await self._one_request(conn, buffer, reader, writer, peer, cert)
                if answer is None:
                    return
                await self._send(conn, writer, answer)
                self._busy(False)
                if conn.their_state is not h11.DONE:
                    await _linger(reader, writer)  # answered before the request ended
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
        assert self._tls is not None
        return await server_handshake(
            writer,
            self._tls,
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
    ) -> _Answer | None:
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
                return _Answer(sender.status, {"error": sender.reason}, extra, close=True)
            early = self._check_request(event)
            if early is not None:
                return early
            if conn.they_are_waiting_for_100_continue:
                writer.write(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
            body = await self._read_body(conn, reader, deadline)
            if isinstance(body, _Answer):
                return body
            self._busy(True)  # from here, stop() lets the journaling finish within its grace
            return await self._handle(body, f"{peer} ({sender})" if sender else peer)
        except BadFraming as exc:
            log.info("listener %s: bad HTTP from %s: %s", cfg.name, peer, exc.reason)
            return _Answer(
                exc.status, {"error": f"malformed HTTP request: {exc.reason}"}, close=True
            )
        except _Timeout as exc:
            if exc.idle:
                return None
            log.info("listener %s: request from %s timed out", cfg.name, peer)
            return _Answer(408, {"error": "request not received whole in time"}, close=True)
        except h11.RemoteProtocolError as exc:
            # h11 may quote the offending bytes after a colon: keep only the kind of error.
            problem = str(exc).split(":", 1)[0].strip()[:100] or "protocol error"
            log.info("listener %s: bad HTTP from %s: %s", cfg.name, peer, problem)
            if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
                return None
            hint = exc.error_status_hint
            status = hint if 400 <= hint < 500 or hint == 501 else 400
            return _Answer(status, {"error": f"malformed HTTP request: {problem}"}, close=True)

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

    def _check_request(self, request: h11.Request) -> _Answer | None:
        """Path, method, Content-Type and declared length, before any body is read."""
        cfg = self.config
        target = request.target.decode("ascii", "replace").split("?", 1)[0]
        if target != cfg.path:
            return _Answer(
                404, {"error": f"not found: documents are posted to {cfg.path}"}, close=True
            )
        if request.method != b"POST":
            return _Answer(
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
            return _Answer(
                415,
                {"error": f"Content-Type {shown} not accepted: use application/xml or text/xml"},
                close=True,
            )
        length = _header(request, b"content-length")
        if length.isdigit() and int(length) > cfg.max_body_bytes:
            return _Answer(413, _too_large(cfg.max_body_bytes), close=True)
        return None

    async def _read_body(
        self, conn: h11.Connection, reader: asyncio.StreamReader, deadline: float | None
    ) -> bytes | _Answer:
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
                    return _Answer(413, _too_large(cap), close=True)
                parts.append(bytes(event.data))
                continue
            if isinstance(event, h11.EndOfMessage):
                return b"".join(parts)
            raise h11.RemoteProtocolError("connection closed before the body ended", 400)

    async def _handle(self, body: bytes, peer: str) -> _Answer:
        """Examines, journals, answers."""
        cfg = self.config
        verdict: Verdict = await run_blocking(examine, body, self._schema)
        entry = journal_entry(cfg.name, body, verdict, peer)
        try:
            result = await self._ingest(entry)
        except Exception as exc:  # noqa: BLE001 - fail closed: never a 2xx without a commit
            if not isinstance(exc, StoreError):
                log.exception("listener %s: journaling failed unexpectedly", cfg.name)
                return _Answer(
                    500,
                    {"error": "internal error; send the document again (a resend is recognised)"},
                )
            log.error(
                "listener %s: journal unavailable for a %d-byte document from %s: %s",
                cfg.name,
                len(body),
                peer,
                exc,
            )
            if verdict.accepted:
                return _Answer(
                    503,
                    {"error": "the journal cannot be written now; retry later"},
                    headers=[(b"retry-after", b"5")],
                )
            return _rejection(verdict, None)
        log.info(
            "listener %s: %d bytes from %s -> message %d%s, %s",
            cfg.name,
            len(body),
            peer,
            result.message_id,
            " (already journaled)" if result.duplicate else "",
            verdict.outcome,
        )
        if not verdict.accepted:
            return _rejection(verdict, result.message_id)
        answer: dict[str, Any] = {"message_id": result.message_id}
        if result.duplicate:
            answer["duplicate"] = True
        return _Answer(202, answer)

    async def _send(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, answer: _Answer
    ) -> None:
        body = json.dumps(answer.body, ensure_ascii=False).encode("utf-8")
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"date", email.utils.formatdate(usegmt=True).encode()),
            (b"server", _SERVER),
            (b"cache-control", b"no-store"),
            *answer.headers,
        ]
        if answer.close or self._stopping:
            headers.append((b"connection", b"close"))
        response = h11.Response(
            status_code=answer.status, headers=headers, reason=HTTPStatus(answer.status).phrase
        )
        data = conn.send(response) or b""
        if not answer.head:
            data += conn.send(h11.Data(data=body)) or b""
        data += conn.send(h11.EndOfMessage()) or b""
        writer.write(data)
        async with asyncio.timeout(self.config.read_timeout):
            await writer.drain()


def _rejection(verdict: Verdict, message_id: int | None) -> _Answer:
    body: dict[str, Any] = {"error": verdict.reason}
    if verdict.issues:
        body["errors"] = [{"line": i.line, "message": i.message} for i in verdict.issues]
    if message_id is not None:
        body["message_id"] = message_id
    return _Answer(400 if verdict.outcome == "bad_xml" else 422, body)


def _too_large(cap: int) -> dict[str, Any]:
    return {"error": f"body larger than max_body_bytes ({cap} bytes)"}


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
            return await reader.read(_READ_CHUNK)
    except TimeoutError:
        raise _Timeout(idle) from None


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """After answering a request not read to its end: stop writing, discard what the
    client is still sending for a moment (bounded), so that closing with unread bytes
    does not reset the connection before the client has read the answer."""
    if writer.can_write_eof():
        with contextlib.suppress(OSError):
            writer.write_eof()
    with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
        async with asyncio.timeout(_LINGER_SECONDS):
            discarded = 0
            while discarded < _LINGER_BYTES:
                data = await reader.read(_READ_CHUNK)
                if not data:
                    return
                discarded += len(data)


async def _refuse(writer: asyncio.StreamWriter) -> None:
    body = b'{"error": "too many connections; retry later"}'
    writer.write(
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
        b"retry-after: 5\r\nconnection: close\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
        async with asyncio.timeout(5):
            await writer.drain()
    await close_stream(writer)


def _client_subject(writer: asyncio.StreamWriter) -> CertSubject | None:
    """The subject of the client certificate, when TLS verified one (None otherwise)."""
    ssl_object = writer.get_extra_info("ssl_object")
    if not isinstance(ssl_object, ssl.SSLObject):
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return CertSubject.from_der(der) if der else None


def _factory(config: HttpListenerConfig, ingest: Ingest) -> HttpListener:
    return HttpListener(config, ingest)


register_listener(
    ListenerSpec(
        type_name="http",
        config_model=HttpListenerConfig,
        factory=_factory,
        summary="CDA R2 documents by HTTP(S) POST: journal each, answer 202 with its message id",
        produces=(MEDIA_CDA_XML,),
    )
)
