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

This module is the listener (admission, start, stop); the configuration is in
:mod:`connectors._http_config`, one connection's requests in
:mod:`connectors._http_conn`, the answers in :mod:`connectors._http_answer`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl

import httpx

from connectors import _http_exposure  # noqa: F401 - registers its eai check
from connectors._cda_intake import schema_for
from connectors._http_answer import refuse
from connectors._http_auth import Authenticator
from connectors._http_config import HttpListenerConfig
from connectors._http_conn import XML_TYPES, ConnectionHandler
from connectors._http_oauth import Jwks
from eai.errors import ConfigError, ConfigIssue
from eai.messages import MEDIA_CDA_XML
from eai.net import (
    LogThrottle,
    StreamServer,
    address_allowed,
    close_stream,
    parse_networks,
    peer_host,
    peer_name,
    run_blocking,
    server_context,
    split_bind,
)
from eai.registry import Ingest, ListenerSpec, register_listener

__all__ = ["XML_TYPES", "HttpListener", "HttpListenerConfig"]

log = logging.getLogger(__name__)


class HttpListener:
    """Serves one :class:`HttpListenerConfig`; journals through ``ingest`` before answering."""

    def __init__(self, config: HttpListenerConfig, ingest: Ingest) -> None:
        self.config = config
        self._server = StreamServer(config.name, log)
        self._tasks: dict[asyncio.Task[None], bool] = {}  # task -> busy with a request
        host, port = split_bind(config.bind)
        self._host, self._port = host, port
        self._networks = parse_networks(config.allowed_networks)
        self._jwks = Jwks(config.oauth2) if config.oauth2 is not None else None
        self._refusals = LogThrottle()  # WARNING once a minute per refused address, else DEBUG
        auth = Authenticator(
            config.api_keys,
            config.allowed_subjects,
            certificates_verified=config.tls is not None and config.tls.client_ca is not None,
            jwks=self._jwks,
        )
        self._connections = ConnectionHandler(config, ingest, auth, self._jwks, self._busy)

    @property
    def port(self) -> int:
        """The bound port (the OS's choice when ``bind`` says port 0)."""
        return self._server.port

    async def start(self) -> None:
        """Loads the schema and TLS context, binds; returns once bound."""
        cfg = self.config
        connections = self._connections
        connections.stopping = False
        connections.schema = await run_blocking(schema_for, cfg)
        if self._jwks is not None:
            await self._load_jwks()
        ctx: ssl.SSLContext | None = server_context(cfg.tls) if cfg.tls is not None else None
        connections.tls = ctx
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
            "on" if connections.schema is not None else "off",
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
        self._connections.stopping = True
        if not self._server.close():
            return
        for task, busy in list(self._tasks.items()):
            if not busy:
                task.cancel()
        await self._server.finish(list(self._tasks), grace, "request(s)")

    def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = peer_name(writer)
        host = peer_host(writer)
        stopping = self._connections.stopping
        if not address_allowed(self._networks, host):
            log.log(
                self._refusals.level(host),
                "listener %s: connection from %s refused: address not in allowed_networks",
                self.config.name,
                peer,
            )
            task = asyncio.create_task(close_stream(writer), name=f"http-refuse:{peer}")
        elif stopping or len(self._tasks) >= self.config.max_connections:
            log.warning(
                "listener %s: refused connection from %s: %s",
                self.config.name,
                peer,
                "stopping" if stopping else f"{self.config.max_connections} already open",
            )
            task = asyncio.create_task(refuse(writer), name=f"http-refuse:{peer}")
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
        await self._connections.serve(reader, writer, peer)


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
