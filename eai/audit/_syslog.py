"""Forwards the audit trail to the region's SIEM: syslog (RFC 5424) over TLS (RFC 5425).

Touches: network (one TLS connection to the syslog server), DB (reads records, keeps
the forwarder's cursor), files (the TLS material).

A task of the engine's loop, never in the way of the flows: records are read in a
worker thread from the persisted cursor (``audit_state`` row ``syslog``), sent as
octet-counted frames (``LEN SP SYSLOG-MSG``, RFC 5425 4.3), and the cursor moves
only once the connection that carried them is still open at the next round (the
server did not go away meanwhile). A server down, refusing or restarted gets the
records again from the cursor: at-least-once delivery, each message carrying its
chain sequence number (``[meta sequenceId=N]``, RFC 5424 7.3.1) for a SIEM to drop
duplicates. With several engine nodes, the node holding the ``lease:syslog`` row
forwards; another takes over when that lease expires. Facility 10
(security/authorization), severity 5 (notice), MSGID ``IHE+RFC-3881`` (DICOM XML) or
``IHE+FHIR`` (FHIR JSON), as IHE ATNA has it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from datetime import UTC

from eai.audit._dicom_xml import dicom_audit_message
from eai.audit._fhir import audit_event
from eai.config import SyslogConfig, TlsClientConfig
from eai.net import client_context, run_blocking
from eai.store import (
    AuditRecord,
    Store,
    audit_after,
    audit_cursor,
    hold_audit_lease,
    set_audit_cursor,
)

__all__ = ["CURSOR", "SyslogForwarder", "syslog_frame"]

log = logging.getLogger(__name__)

CURSOR = "syslog"
_PRI = 10 * 8 + 5  # facility 10 security/authorization, severity 5 notice
_BOM = b"\xef\xbb\xbf"
_BATCH = 200


def syslog_frame(record: AuditRecord, cfg: SyslogConfig, hostname: str) -> bytes:
    """One record as an octet-counted RFC 5424 message."""
    if cfg.format == "fhir":
        body = json.dumps(audit_event(record, hostname), ensure_ascii=False, separators=(",", ":"))
        msgid = "IHE+FHIR"
    else:
        body = dicom_audit_message(record, hostname)
        msgid = "IHE+RFC-3881"
    stamp = record.at.replace(tzinfo=UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    header = (
        f"<{_PRI}>1 {stamp} {hostname[:255] or '-'} {cfg.app_name} - {msgid} "
        f'[meta sequenceId="{record.seq % 2147483647 or 1}"] '
    )
    message = header.encode("utf-8") + _BOM + body.encode("utf-8")
    return f"{len(message)} ".encode("ascii") + message


class SyslogForwarder:
    """``await run(stopping)`` forwards until ``stopping`` is set."""

    def __init__(self, store: Store, cfg: SyslogConfig, hostname: str) -> None:
        self._store = store
        self._cfg = cfg
        self._hostname = hostname
        self._context = client_context(
            TlsClientConfig(
                ca=cfg.ca, cert=cfg.cert, key=cfg.key, server_hostname=cfg.server_hostname
            )
        )
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: int | None = None  # sent on the open connection, not yet confirmed
        self._down = False

    def _alive(self) -> bool:
        reader, writer = self._reader, self._writer
        return not (
            reader is None
            or writer is None
            or writer.is_closing()
            or reader.at_eof()
            or reader.exception() is not None
        )

    async def _close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), self._cfg.timeout)
            except (OSError, ssl.SSLError, TimeoutError):
                pass

    async def _connect(self) -> None:
        cfg = self._cfg
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(
                cfg.host,
                cfg.port,
                ssl=self._context,
                server_hostname=cfg.server_hostname or cfg.host,
            ),
            cfg.timeout,
        )

    async def _confirm(self) -> None:
        """The records sent on a connection still open are taken as delivered; those of
        a connection the server closed meanwhile are sent again."""
        if self._pending is None:
            return
        if self._alive():
            await run_blocking(set_audit_cursor, self._store.engine, CURSOR, self._pending)
        else:
            log.warning("audit forwarding: the syslog server closed the connection; resending")
            await self._close()
        self._pending = None

    async def step(self) -> int:
        """One round: confirm what the last one sent, then send the next records (when
        this node holds the forwarding lease: one forwarder per trail across nodes)."""
        await self._confirm()
        lease = max(30.0, 3 * (self._cfg.poll + self._cfg.timeout))
        engine = self._store.engine
        if not await run_blocking(hold_audit_lease, engine, CURSOR, self._hostname, lease):
            await self._close()
            return 0
        cursor = await run_blocking(audit_cursor, self._store.engine, CURSOR)
        records = await run_blocking(audit_after, self._store.engine, cursor, _BATCH)
        if not records:
            return 0
        if not self._alive():
            await self._close()
            await self._connect()
        assert self._writer is not None
        for record in records:
            self._writer.write(syslog_frame(record, self._cfg, self._hostname))
        await asyncio.wait_for(self._writer.drain(), self._cfg.timeout)
        self._pending = records[-1].seq
        return len(records)

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                sent = await self.step()
            except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as exc:
                if not self._down:
                    log.warning(
                        "audit forwarding to %s:%d failed (%s); retrying every %gs",
                        self._cfg.host,
                        self._cfg.port,
                        type(exc).__name__,
                        self._cfg.retry_every,
                    )
                self._down = True
                self._pending = None
                await self._close()
                await _wait(stopping, self._cfg.retry_every)
                continue
            except Exception:  # noqa: BLE001 - forwarding never stops the engine
                log.exception("audit forwarding failed; retrying")
                self._pending = None
                await self._close()
                await _wait(stopping, self._cfg.retry_every)
                continue
            if self._down and sent:
                log.warning("audit forwarding to %s:%d restored", self._cfg.host, self._cfg.port)
                self._down = False
            if sent < _BATCH:
                await _wait(stopping, self._cfg.poll)
        try:
            await self._confirm()
        except Exception:  # noqa: BLE001 - stopping: the records are sent again next start
            log.debug("audit forwarding: last batch unconfirmed at stop")
        await self._close()


async def _wait(stopping: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stopping.wait(), seconds)
    except TimeoutError:
        pass
