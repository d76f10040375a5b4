"""The MLLP destination: send one HL7 v2 message per call and check its acknowledgement.

Touches: network (outbound TCP, optionally TLS), files (TLS certificates, when built).

Registered as destination type ``mllp``. A small pool of connections, opened
lazily; on each connection one message at a time (write the block, read one
ACK). Whenever the state of a connection is in doubt (timeout, framing error,
ACK for another message, cancellation) it is closed, so that a late ACK can
never be read as the answer to the next message. Retry scheduling is the
delivery worker's: this module only says transient or permanent.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Literal

from pydantic import Field

from connectors.mllp._ack import AckError, AckSummary, read_ack_frame, summarise_ack
from connectors.mllp._framing import FrameDecoder, frame
from eai.config import DestinationConfig, Duration, TlsClientConfig
from eai.errors import PermanentDeliveryError, TransientDeliveryError
from eai.messages import MEDIA_CDA_XML, MEDIA_HL7V2, DeliveryResult, OutboxItem, SendLimits
from eai.net import client_context
from eai.registry import DestinationSpec, register_destination

__all__ = ["MllpDestination", "MllpDestinationConfig"]

log = logging.getLogger(__name__)

MIB = 1024 * 1024


class MllpDestinationConfig(DestinationConfig):
    """An MLLP (HL7 v2 over TCP) peer to deliver to."""

    type: Literal["mllp"] = "mllp"
    host: str = Field(
        min_length=1, description="peer host name or address", examples=["dpi.chu-x.fr"]
    )
    port: int = Field(ge=1, le=65535, description="peer MLLP port", examples=[2575])
    ack_timeout: Duration = Field(
        30.0,
        gt=0,
        description="time allowed for the peer's ACK; past it the connection is closed and the "
        "delivery retried",
        examples=["30s"],
    )
    connect_timeout: Duration = Field(
        10.0, gt=0, description="time allowed to connect (TLS handshake included)", examples=["10s"]
    )
    connections: int = Field(
        1,
        ge=1,
        le=64,
        description="connections kept open to the peer; each sends one message at a time "
        "(1 keeps the send order)",
        examples=[1],
    )
    max_ack_bytes: int = Field(
        1 * MIB, gt=0, description="largest ACK read from the peer", examples=[MIB]
    )
    tls: TlsClientConfig | None = Field(None, description="connect over TLS")

    def send_limits(self) -> SendLimits:
        return SendLimits(self.connections, self.connect_timeout, self.ack_timeout)


class _Connection:
    __slots__ = ("decoder", "reader", "writer")

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, max_ack_bytes: int
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = FrameDecoder(max_ack_bytes)


class MllpDestination:
    """Delivers :class:`~eai.messages.OutboxItem` payloads to one MLLP peer."""

    def __init__(self, config: MllpDestinationConfig) -> None:
        self.config = config
        self._address = f"{config.host}:{config.port}"
        # Built now so that a bad certificate path fails at start, not at the first send.
        self._ssl: ssl.SSLContext | None = (
            client_context(config.tls) if config.tls is not None else None
        )
        self._slots: asyncio.LifoQueue[_Connection | None] = asyncio.LifoQueue()
        for _ in range(config.connections):
            self._slots.put_nowait(None)
        self._open: set[_Connection] = set()
        self._closed = False

    async def send(self, item: OutboxItem) -> DeliveryResult:
        """Deliver ``item``: AA/CA return; AE/CE and I/O trouble: transient; AR/CR: permanent."""
        if item.media_type not in ACCEPTS:
            raise PermanentDeliveryError(
                f"destination {self.config.name} sends HL7 v2 or a CDA as is, not {item.media_type}"
            )
        if self._closed:
            raise TransientDeliveryError(f"destination {self.config.name} is closed")
        conn = await self._slots.get()
        reusable = False
        try:
            if conn is not None and (conn.writer.is_closing() or conn.reader.at_eof()):
                self._discard(conn)  # the peer closed it while idle: not worth a failed send
                conn = None
            if conn is None:
                conn = await self._connect()
            raw, clean = await self._exchange(conn, item)
            ack = self._check(item, raw)
            reusable = clean
            return self._verdict(ack)
        finally:
            # Any doubt (timeout, error, cancellation, wrong ACK): never reuse the connection.
            if conn is not None and (not reusable or self._closed):
                self._discard(conn)
                conn = None
            self._slots.put_nowait(conn)

    async def start(self) -> None:
        """Nothing ahead: connections open at the first send (the peer may be down)."""

    async def close(self) -> None:
        """Close every pooled connection; later sends fail as transient."""
        self._closed = True
        conns = list(self._open)
        for conn in conns:
            self._discard(conn)
        for conn in conns:
            try:
                async with asyncio.timeout(1):
                    await conn.writer.wait_closed()
            except (OSError, TimeoutError):
                pass

    # -- steps --------------------------------------------------------------

    async def _connect(self) -> _Connection:
        cfg = self.config
        server_hostname = None
        if self._ssl is not None:
            server_hostname = (cfg.tls.server_hostname if cfg.tls else None) or cfg.host
        try:
            async with asyncio.timeout(cfg.connect_timeout):
                reader, writer = await asyncio.open_connection(
                    cfg.host,
                    cfg.port,
                    ssl=self._ssl,
                    server_hostname=server_hostname,
                )
        except TimeoutError as exc:
            raise TransientDeliveryError(
                f"{self._address}: no connection within {cfg.connect_timeout:g} s"
            ) from exc
        except OSError as exc:
            raise TransientDeliveryError(f"{self._address}: cannot connect: {exc}") from exc
        conn = _Connection(reader, writer, cfg.max_ack_bytes)
        self._open.add(conn)
        log.debug("destination %s: connected to %s", cfg.name, self._address)
        return conn

    async def _exchange(self, conn: _Connection, item: OutboxItem) -> tuple[bytes, bool]:
        """Write the block, read one ACK block; return it and whether the connection is reusable."""
        cfg = self.config
        try:
            async with asyncio.timeout(cfg.ack_timeout):
                conn.writer.write(frame(item.payload))
                await conn.writer.drain()
                raw, extra = await read_ack_frame(conn.reader, conn.decoder)
        except TimeoutError as exc:
            raise TransientDeliveryError(
                f"{self._address}: no ACK for control id {item.control_id} "
                f"within {cfg.ack_timeout:g} s"
            ) from exc
        except AckError as exc:
            raise TransientDeliveryError(f"{self._address}: {exc}") from exc
        except OSError as exc:
            raise TransientDeliveryError(f"{self._address}: connection failed: {exc}") from exc
        if extra:
            log.warning(
                "destination %s: %s sent more than one ACK; reconnecting", cfg.name, self._address
            )
        return raw, not extra

    def _check(self, item: OutboxItem, raw: bytes) -> AckSummary:
        """The ACK must be readable and acknowledge this message (MSA-2 = its MSH-10)."""
        try:
            ack = summarise_ack(raw)
        except AckError as exc:
            raise TransientDeliveryError(f"{self._address}: {exc}") from exc
        if ack.control_id != item.control_id:
            raise TransientDeliveryError(
                f"{self._address}: ACK for another message (MSA-2 {ack.control_id[:40]!r}, "
                f"expected {item.control_id!r})"
            )
        return ack

    def _verdict(self, ack: AckSummary) -> DeliveryResult:
        if ack.code in ("AA", "CA"):
            return DeliveryResult(detail=ack.code, response=ack.raw)
        detail = f"{ack.code}: {ack.text}" if ack.text else ack.code
        if ack.code in ("AE", "CE"):
            raise TransientDeliveryError(f"{self._address} answered {detail}")
        raise PermanentDeliveryError(f"{self._address} answered {detail}")

    def _discard(self, conn: _Connection) -> None:
        self._open.discard(conn)
        conn.writer.close()
        log.debug("destination %s: closed connection to %s", self.config.name, self._address)


ACCEPTS = (MEDIA_HL7V2, MEDIA_CDA_XML)
"""HL7 v2 messages, and CDA documents framed as they are (the regional oncology record,
DCC, takes CDA reports over MLLP): what the MLLP destination did before media types
were declared."""


def _factory(config: MllpDestinationConfig) -> MllpDestination:
    return MllpDestination(config)


register_destination(
    DestinationSpec(
        type_name="mllp",
        config_model=MllpDestinationConfig,
        factory=_factory,
        summary="HL7 v2 over MLLP (TCP, optional TLS): send, wait for the ACK, check MSA-2",
        accepts=ACCEPTS,
        reads_facts=False,  # it sends the payload as it is
    )
)
