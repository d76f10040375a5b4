"""The MLLP listener: accept HL7 v2 over TCP (optionally TLS), journal each message, then ACK.

Touches: network (binds a server socket), files (TLS certificates, at start).

Registered as listener type ``mllp``. Each accepted connection is a
:class:`~connectors.mllp._session.Session`; what a block becomes (journal entry,
AA/CA/AE/CE/AR/CR) is decided by :class:`~connectors.mllp._inbound.FrameHandler`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Literal

from pydantic import Field, field_validator

from connectors._server import finish_connections
from connectors.mllp._inbound import FrameHandler
from connectors.mllp._session import Session
from connectors.mllp._tls import server_context
from eai.config import Duration, ListenerConfig, TlsServerConfig
from eai.errors import InputError
from eai.hl7 import codec_for_charset
from eai.registry import Ingest, ListenerSpec, register_listener

__all__ = ["MllpListener", "MllpListenerConfig", "split_bind"]

log = logging.getLogger(__name__)

MIB = 1024 * 1024


def split_bind(bind: str) -> tuple[str, int]:
    """``"host:port"`` or ``"[v6]:port"`` -> (host, port); ValueError when malformed."""
    host, sep, port_text = bind.rpartition(":")
    if not sep:
        raise ValueError(f"bind {bind!r} must be host:port, e.g. 0.0.0.0:2575")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host.strip():
        raise ValueError(f"bind {bind!r}: the host is empty (use 0.0.0.0 for every interface)")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"bind {bind!r}: the port must be a number from 0 to 65535")
    return host, int(port_text)


class MllpListenerConfig(ListenerConfig):
    """An MLLP (HL7 v2 over TCP) listener."""

    type: Literal["mllp"] = "mllp"
    bind: str = Field(
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
        description="simultaneous connections; one more is closed at once",
        examples=[64],
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

    @field_validator("bind")
    @classmethod
    def _check_bind(cls, value: str) -> str:
        split_bind(value)
        return value

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

    def __init__(self, config: MllpListenerConfig, ingest: Ingest) -> None:
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
        self._server: asyncio.Server | None = None
        self._sessions: dict[asyncio.Task[None], Session] = {}
        self._stopping = False

    @property
    def port(self) -> int:
        """The bound port (the OS's choice when ``bind`` says port 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("listener is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def connections(self) -> int:
        """Connections being served now."""
        return len(self._sessions)

    async def start(self) -> None:
        """Bind and start accepting; returns once bound."""
        cfg = self.config
        self._stopping = False
        ctx: ssl.SSLContext | None = server_context(cfg.tls) if cfg.tls is not None else None
        handshake = cfg.frame_timeout if cfg.frame_timeout > 0 else None
        self._server = await asyncio.start_server(
            self._on_connection,
            cfg.host,
            cfg.port,
            ssl=ctx,
            ssl_handshake_timeout=handshake if ctx is not None else None,
            reuse_address=True,
        )
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
        if self._server is None:
            return
        self._server.close()
        for task, session in list(self._sessions.items()):
            session.request_stop()
            if not session.busy:
                task.cancel()
        await finish_connections(list(self._sessions), grace, self.config.name, "connection(s)")
        await self._server.wait_closed()
        self._server = None
        log.info("listener %s: stopped", self.config.name)

    def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Accept callback: serve the connection in a task we own (stop() may cancel it)."""
        peer = _peer(writer)
        if self._stopping or len(self._sessions) >= self.config.max_connections:
            log.warning(
                "listener %s: refused connection from %s: %s",
                self.config.name,
                peer,
                "stopping" if self._stopping else f"{self.config.max_connections} already open",
            )
            writer.close()
            return
        session = Session(
            reader,
            writer,
            self._handler,
            listener=self.config.name,
            peer=peer,
            max_message_bytes=self.config.max_message_bytes,
            idle_timeout=self.config.idle_timeout,
            frame_timeout=self.config.frame_timeout,
        )
        task = asyncio.create_task(self._serve(session, writer), name=f"mllp:{peer}")
        self._sessions[task] = session
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._sessions.pop(task, None)

    async def _serve(self, session: Session, writer: asyncio.StreamWriter) -> None:
        log.debug("listener %s: connection from %s", self.config.name, session.peer)
        try:
            await session.run()
        except Exception:
            log.exception("listener %s: connection from %s failed", self.config.name, session.peer)
        finally:
            await _close(writer)
            log.debug("listener %s: connection from %s closed", self.config.name, session.peer)


def _peer(writer: asyncio.StreamWriter) -> str:
    address = writer.get_extra_info("peername")
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address or "?")


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        async with asyncio.timeout(5):
            await writer.wait_closed()
    except (OSError, ssl.SSLError, TimeoutError):
        pass


def _factory(config: MllpListenerConfig, ingest: Ingest) -> MllpListener:
    return MllpListener(config, ingest)


register_listener(
    ListenerSpec(
        type_name="mllp",
        config_model=MllpListenerConfig,
        factory=_factory,
        summary="HL7 v2 over MLLP (TCP, optional TLS): journal each message, then ACK",
    )
)
