"""The MLLP listener: accept HL7 v2 over TCP (optionally TLS), journal each message, then ACK.

Touches: network (binds a server socket), files (TLS certificates, at start).

Registered as listener type ``mllp``. Each accepted connection is a
:class:`~connectors.mllp._session.Session`; what a block becomes (journal entry,
AA/CA/AE/CE/AR/CR) is decided by :class:`~connectors.mllp._inbound.FrameHandler`.

Who may hold a connection (:class:`eai.net.Admission`), checked at accept before
anything is read: the source address must be in ``allowed_networks``; one address
holds at most ``max_connections_per_peer``; a connection must deliver its first
complete block within ``first_frame_timeout`` of the accept or it is closed. A
connection is *known* once a block it sent was accepted (journaled from an
allowed MSH-4; a retransmission counts); when ``max_connections`` are open, a new
one evicts the oldest connection that is not known (and not being answered), so
silent or trickling sockets cannot lock the known senders out; when all are
known, the new one is closed. Over TLS, the handshake runs in the connection's
task once it is admitted (within ``first_frame_timeout`` and ``frame_timeout``),
so an address outside the networks is closed before its ClientHello is read.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from time import perf_counter
from typing import Literal

from pydantic import Field, field_validator

from connectors.mllp._framing import Frame, FrameEvent
from connectors.mllp._inbound import FrameHandler, Reply
from connectors.mllp._session import Session
from eai.config import Duration, ListenerConfig, TlsServerConfig
from eai.errors import InputError
from eai.hl7 import codec_for_charset
from eai.messages import MEDIA_HL7V2
from eai.metrics import Observer, listener_meter
from eai.net import (
    Admission,
    BindAddress,
    NetworkList,
    StreamServer,
    close_stream,
    parse_networks,
    peer_host,
    peer_name,
    server_context,
    server_handshake,
    split_bind,
)
from eai.registry import Ingest, JournalHost, Listener, ListenerSpec, register_listener

__all__ = ["MllpListener", "MllpListenerConfig"]

log = logging.getLogger(__name__)

MIB = 1024 * 1024


class MllpListenerConfig(ListenerConfig):
    """An MLLP (HL7 v2 over TCP) listener."""

    type: Literal["mllp"] = "mllp"
    bind: BindAddress = Field(
        description="address and port to listen on, host:port (port 0: chosen by the OS)",
        examples=["0.0.0.0:2575", "127.0.0.1:6661", "[::]:2575"],
    )
    max_message_bytes: int = Field(
        10 * MIB,
        gt=0,
        description="largest accepted message; a bigger one is answered AR and not stored whole",
        examples=[10 * MIB],
    )
    allowed_senders: list[str] | None = Field(
        None,
        min_length=1,
        description="sending facilities (MSH-4.1) accepted; others are answered AR. "
        "Unset: any sender",
        examples=[["CHU-X", "CLINIQUE-Y"]],
    )
    max_connections: int = Field(
        64,
        ge=1,
        description="simultaneous connections; past it a new one evicts the oldest connection "
        "that has not yet had a message accepted, or is closed at once when there is none",
        examples=[64],
    )
    allowed_networks: NetworkList = Field(
        (),
        description="source addresses or networks (CIDR) allowed to connect; a connection "
        "from elsewhere is closed at accept, unread. Empty: any address",
        examples=[["10.1.2.0/24", "192.168.40.17"]],
    )
    max_connections_per_peer: int = Field(
        8,
        ge=1,
        description="simultaneous connections from one source address; one more is closed "
        "at once (raise it for a NAT gateway fronting many sending applications)",
        examples=[8],
    )
    first_frame_timeout: Duration = Field(
        10.0,
        description="close a new connection that has not delivered a complete MLLP block "
        "this long after it was accepted (silent or trickling sockets; 0: no limit). Raise "
        "it for senders that open their connection long before their first message",
        examples=["10s"],
    )
    idle_timeout: Duration = Field(
        300.0,
        description="close a connection that sent nothing for this long (0: never)",
        examples=["300s", "10m"],
    )
    frame_timeout: Duration = Field(
        60.0,
        description="close a connection whose started message is not complete within this "
        "(protects against senders trickling bytes; 0: no limit)",
        examples=["60s"],
    )
    tls: TlsServerConfig | None = Field(
        None,
        description="serve MLLP over TLS; client_ca verifies client certificates",
    )
    default_charset: str = Field(
        "UNICODE UTF-8",
        description="HL7 table 0211 character set assumed when MSH-18 is empty",
        examples=["UNICODE UTF-8", "8859/1"],
    )
    own_process: bool = Field(
        False,
        description="serve this listener in a process of its own: reading, journaling "
        "and acknowledging there, on another core than the engine's pipeline and "
        "delivery (a high-volume feed; the process is started again if it dies)",
        examples=[True],
    )

    @field_validator("default_charset")
    @classmethod
    def _check_charset(cls, value: str) -> str:
        try:
            codec_for_charset("", value)
        except InputError as exc:
            raise ValueError(exc.reason.replace("MSH-18 ", "")) from None
        return value

    @property
    def host(self) -> str:
        return split_bind(self.bind)[0]

    @property
    def port(self) -> int:
        return split_bind(self.bind)[1]


class MllpListener:
    """Serves one :class:`MllpListenerConfig`; journals through ``ingest`` before each ACK."""

    def __init__(
        self,
        config: MllpListenerConfig,
        ingest: Ingest,
        *,
        ack_seconds: Observer | None = None,
    ) -> None:
        """``ack_seconds`` times each answer (default: the listener's meter)."""
        self.config = config
        self._handler = FrameHandler(
            listener=config.name,
            ingest=ingest,
            allowed_senders=(
                frozenset(config.allowed_senders) if config.allowed_senders is not None else None
            ),
            default_charset=config.default_charset,
            max_message_bytes=config.max_message_bytes,
        )
        self.admission: Admission[Session] = Admission(
            listener=config.name,
            networks=parse_networks(config.allowed_networks),
            max_per_peer=config.max_connections_per_peer,
            capacity=config.max_connections,
            logger=log,
        )
        """Who holds the connections; its ``counts`` say how many were refused or evicted."""
        self._server = StreamServer(config.name, log)
        self._sessions: dict[asyncio.Task[None], Session] = {}
        self._tasks: dict[Session, asyncio.Task[None]] = {}
        self._timers: dict[Session, asyncio.TimerHandle] = {}
        self._stopping = False
        self._tls: ssl.SSLContext | None = None
        self._ack_seconds = (
            ack_seconds if ack_seconds is not None else listener_meter(config.name).ack_seconds
        )

    @property
    def port(self) -> int:
        """The bound port (the OS's choice when ``bind`` says port 0)."""
        return self._server.port

    @property
    def connections(self) -> int:
        """Connections being served now."""
        return len(self._sessions)

    async def start(self) -> None:
        """Bind and start accepting; returns once bound."""
        cfg = self.config
        self._stopping = False
        ctx: ssl.SSLContext | None = server_context(cfg.tls) if cfg.tls is not None else None
        self._tls = ctx
        # TLS is started by the connection's task, once admitted: an address outside
        # allowed_networks is closed before its handshake is read.
        await self._server.start(self._on_connection, cfg.host, cfg.port)
        log.info(
            "listener %s: MLLP%s on %s (port %d)",
            cfg.name,
            " over TLS" if ctx else "",
            cfg.bind,
            self.port,
        )

    async def stop(self, grace: float) -> None:
        """Stop accepting; blocks being journaled get their ACK within ``grace`` s; close all."""
        self._stopping = True
        if not self._server.close():
            return
        for task, session in list(self._sessions.items()):
            session.request_stop()
            if not session.busy:
                task.cancel()
        await self._server.finish(list(self._sessions), grace, "connection(s)")

    def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Accept callback: admit (or refuse, unread), then serve in a task we own."""
        peer = peer_name(writer)
        if self._stopping:
            log.warning("listener %s: refused connection from %s: stopping", self.config.name, peer)
            writer.close()
            return
        watch = _Watch(self._handler, self._ack_seconds)
        session = Session(
            reader,
            writer,
            watch,
            listener=self.config.name,
            peer=peer,
            max_message_bytes=self.config.max_message_bytes,
            idle_timeout=self.config.idle_timeout,
            frame_timeout=self.config.frame_timeout,
        )
        decision = self.admission.admit(session, peer_host(writer), _evictable)
        if not decision.admitted:
            writer.close()
            return
        if decision.evicted is not None:
            self._close_unknown(decision.evicted, f"to admit a connection from {peer}")
        watch.on_known = lambda: self.admission.mark_known(session)
        task = asyncio.create_task(self._serve(session, writer), name=f"mllp:{peer}")
        self._sessions[task] = session
        self._tasks[session] = task
        if self.config.first_frame_timeout > 0:
            self._timers[session] = asyncio.get_running_loop().call_later(
                self.config.first_frame_timeout, self._first_frame_due, session, watch
            )
        task.add_done_callback(self._forget)

    def _first_frame_due(self, session: Session, watch: _Watch) -> None:
        self._timers.pop(session, None)
        if not watch.framed and not session.busy:
            self._close_unknown(
                session,
                f"no complete MLLP block {self.config.first_frame_timeout:g} s after connecting",
            )

    def _close_unknown(self, session: Session, why: str) -> None:
        task = self._tasks.get(session)
        if task is None or task.done():
            return
        host = session.peer.rpartition(":")[0]
        self.admission.report("closed", host, f"closing connection from {session.peer}: {why}")
        self.admission.release(session)
        task.cancel()

    def _forget(self, task: asyncio.Task[None]) -> None:
        session = self._sessions.pop(task, None)
        if session is None:
            return
        self._tasks.pop(session, None)
        self.admission.release(session)
        timer = self._timers.pop(session, None)
        if timer is not None:
            timer.cancel()

    async def _handshake(self, writer: asyncio.StreamWriter, peer: str) -> bool:
        """The server side of the TLS handshake, within ``frame_timeout``; False when it failed."""
        assert self._tls is not None
        timeout = self.config.frame_timeout if self.config.frame_timeout > 0 else None
        return await server_handshake(
            writer, self._tls, timeout, listener=self.config.name, peer=peer, logger=log
        )

    async def _serve(self, session: Session, writer: asyncio.StreamWriter) -> None:
        log.debug("listener %s: connection from %s", self.config.name, session.peer)
        try:
            if self._tls is None or await self._handshake(writer, session.peer):
                await session.run()
        except Exception:
            log.exception("listener %s: connection from %s failed", self.config.name, session.peer)
        finally:
            await close_stream(writer)
            log.debug("listener %s: connection from %s closed", self.config.name, session.peer)


_KNOWN_OUTCOMES = frozenset({"accepted", "duplicate"})
"""A block answered so (journaled from an allowed sender) makes its connection known."""


class _Watch:
    """One connection's way to the listener's :class:`FrameHandler`: notes its first
    complete block, calls ``on_known`` when a block is accepted, and times each answer
    (``eai_ack_latency_seconds``)."""

    __slots__ = ("_ack_seconds", "_handler", "framed", "on_known")

    def __init__(self, handler: FrameHandler, ack_seconds: Observer) -> None:
        self._handler = handler
        self._ack_seconds = ack_seconds
        self.framed = False
        self.on_known: Callable[[], None] | None = None

    async def on_event(self, event: FrameEvent, peer: str) -> Reply | None:
        if isinstance(event, Frame):
            self.framed = True
        started = perf_counter()
        reply = await self._handler.on_event(event, peer)
        if reply is not None and reply.ack is not None:
            self._ack_seconds.observe(perf_counter() - started)
        if reply is not None and reply.outcome in _KNOWN_OUTCOMES and self.on_known is not None:
            self.on_known()
        return reply


def _evictable(session: Session) -> bool:
    """An unknown connection may be evicted unless a block of it is being answered."""
    return not session.busy


def _factory(config: MllpListenerConfig, ingest: Ingest) -> Listener:
    if config.own_process:
        from connectors.mllp.own_process import OwnProcessListener

        if not isinstance(ingest, JournalHost):
            raise TypeError(f"listener {config.name}: own_process needs the engine's journal")
        return OwnProcessListener(config, ingest)
    return MllpListener(config, ingest)


register_listener(
    ListenerSpec(
        type_name="mllp",
        config_model=MllpListenerConfig,
        factory=_factory,
        summary="HL7 v2 over MLLP (TCP, optional TLS): journal each message, then ACK",
        produces=(MEDIA_HL7V2,),
    )
)
