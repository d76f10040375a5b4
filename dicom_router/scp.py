"""The DICOM listener: a C-ECHO / C-STORE SCP that spools, journals, then answers.

Touches: network (binds a server socket; pynetdicom threads), files (spool,
TLS certificates), the event loop (hands journal entries to the engine's loop).

Registered as listener type ``dicom``. pynetdicom serves each association in
its own thread (``association.py``, ``transport.py``); our C-STORE handler
runs there and may block:

1. write the Part-10 file (preamble, File Meta Information, the dataset bytes
   exactly as received, in their transfer syntax) to the spool, encrypted under
   a fresh data key: temp file, fsync, rename to a router-made name, fsync the
   directory (:class:`dicom_router.spool.Spool`); failure: 0xA700;
2. check it: the encoded dataset is complete (:mod:`dicom_router._framing`),
   pydicom reads its header, SOP Class and Instance UIDs are UIDs and match
   the C-STORE request; failure: the file goes to ``quarantine/`` with its
   reason, the instance is journaled ``rejected``, the answer is 0xA900
   (SOP class mismatch) or 0xC000-0xC002 (cannot understand);
3. journal the reference, with the data key (``ingest`` on the engine's loop,
   waiting for the commit; the journal encrypts it); a journal failure removes
   the spool file and answers 0xA700;
4. only then answer 0x0000. A re-sent instance (same listener, calling AE and
   SOP Instance UID: dedup key ``<listener>|<AE>|sha256:<hex of the UID>``, the
   spool file's retention tag) is answered success and not routed twice.

Associations are filtered when requested (PS3.8 7.1.1.9): a called AE title
that is not ours gets A-ASSOCIATE-RJ permanent / "called-AE-title-not-
recognized", a calling AE title (and source address) not on
``allowed_callers`` gets "calling-AE-title-not-recognized", a listener
stopping gets transient / "temporary-congestion", and pynetdicom refuses past
``max_associations`` with transient / "local-limit-exceeded".

Sockets: TCP_NODELAY on (with Nagle's algorithm, a C-STORE round trip on
loopback waits for delayed ACKs: ~20 instead of hundreds of images/s), a
``network_timeout`` on every accepted socket (a peer that stops mid-PDU cannot
hold a thread forever), the TLS handshake in the association's thread with
that timeout (pynetdicom does it in the accept loop, where one silent client
would stall every other), and a PDU length guard: a PDU announcing more than
``max_pdu`` (P-DATA) or 1 MiB (others) is answered A-ABORT and the connection
closed before anything is read into memory.

Each association runs the event-driven reactors of :mod:`dicom_router._reactors`
(no 1 ms polling). The routing attributes are taken from the received buffer
during the framing check (``check_framing(collect=...)``), not by decoding the
dataset again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import logging
import re
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydicom.uid import AllTransferSyntaxes
from pynetdicom import (
    AE,
    ALL_TRANSFER_SYNTAXES,
    AllStoragePresentationContexts,
    _config,
    evt,
)
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode_file_meta
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import AssociationSocket, RequestHandler, ThreadedAssociationServer

from connectors.mllp._tls import server_context
from connectors.mllp.listener import split_bind
from dicom_router._elements import element_text, raw_dataset
from dicom_router._framing import DatasetFramingError, RawElement, check_framing, inflate
from dicom_router._reactors import make_event_driven
from dicom_router._sealing import retention_tag, uid_digest
from dicom_router.content import message_type_of
from dicom_router.reference import ROUTING_KEYWORDS, InstanceRef
from dicom_router.spool import Spool, SpooledFile
from eai.config import Duration, ListenerConfig, Model, TlsServerConfig
from eai.errors import StoreError
from eai.messages import IngestResult, JournalEntry
from eai.registry import Ingest, ListenerSpec, register_listener

__all__ = [
    "AllowedCaller",
    "DicomListener",
    "DicomListenerConfig",
    "STATUS_CANNOT_UNDERSTAND",
    "STATUS_DOES_NOT_MATCH_SOP_CLASS",
    "STATUS_INVALID_UID",
    "STATUS_OUT_OF_RESOURCES",
    "STATUS_UID_MISMATCH",
    "is_uid",
]

log = logging.getLogger(__name__)

# Query identifiers may name patients: pynetdicom logs them by default
# (_config.py); we never log them (as its apps/qrscp does).
_config.LOG_REQUEST_IDENTIFIERS = False
_config.LOG_RESPONSE_IDENTIFIERS = False

STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700
"""Refused: out of resources (spool full or unwritable, journal unavailable); retry later."""
STATUS_DOES_NOT_MATCH_SOP_CLASS = 0xA900
"""Error: the dataset's SOP Class UID is not the one the C-STORE request announced."""
STATUS_CANNOT_UNDERSTAND = 0xC000
"""Error: the dataset cannot be decoded (truncated, malformed)."""
STATUS_INVALID_UID = 0xC001
"""Error: the SOP Instance or Class UID is not a UID (e.g. contains ``../``)."""
STATUS_UID_MISMATCH = 0xC002
"""Error: the dataset's SOP Instance UID is not the one the C-STORE request announced."""

_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # PS3.5 AE: no backslash, no control
_PREAMBLE = b"\x00" * 128 + b"DICM"
_OTHER_PDU_MAX = 1 << 20
_PDATA = 0x04
_ABORT_INVALID_PDU = bytes([0x07, 0, 0, 0, 0, 4, 0, 0, 0x02, 0x06])  # A-ABORT, provider, invalid
_TRANSFER_SYNTAXES = list(dict.fromkeys([*ALL_TRANSFER_SYNTAXES, *AllTransferSyntaxes]))


def is_uid(value: str) -> bool:
    """A UID per PS3.5 9.1: digits and dots, no leading zero in a component, <= 64 chars."""
    return 0 < len(value) <= 64 and _UID.match(value) is not None


def _check_ae_title(value: str) -> str:
    if not _AE_TITLE.match(value) or not value.strip():
        raise ValueError(
            f"{value!r} is not an AE title: 1 to 16 printable ASCII characters, no backslash"
        )
    return value.strip()


class AllowedCaller(Model):
    """A calling AE title allowed to associate, optionally only from some addresses."""

    ae_title: str = Field(description="calling AE title (exact, case-sensitive)", examples=["CT1"])
    hosts: tuple[str, ...] | None = Field(
        default=None,
        min_length=1,
        description="source IP addresses or networks (CIDR) this AE may come from; "
        "unset: any address",
        examples=[["10.1.2.3", "10.1.8.0/24"]],
    )

    @field_validator("ae_title")
    @classmethod
    def _title(cls, value: str) -> str:
        return _check_ae_title(value)

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for host in value or ():
            try:
                ipaddress.ip_network(host, strict=False)
            except ValueError:
                raise ValueError(
                    f"{host!r} is not an IP address or network (host names are not resolved)"
                ) from None
        return value


class DicomListenerConfig(ListenerConfig):
    """A DICOM Storage SCP (C-STORE, C-ECHO), optionally over TLS (PS3.15 B.12)."""

    type: Literal["dicom"] = "dicom"
    ae_title: str = Field(
        description="this SCP's AE title; associations calling another title are refused",
        examples=["EAI_ROUTER"],
    )
    bind: str = Field(
        description="address and port to listen on, host:port (port 0: chosen by the OS)",
        examples=["0.0.0.0:104", "127.0.0.1:11112"],
    )
    allowed_callers: tuple[AllowedCaller, ...] = Field(
        min_length=1,
        description="calling AE titles (and source addresses) accepted; any other association "
        "is refused with A-ASSOCIATE-RJ calling-AE-title-not-recognized",
    )
    spool_dir: Path = Field(
        description="where received instances are kept until delivered (encrypted, each "
        "under a data key that only the journal holds)",
        examples=["/var/lib/eai/spool/chu-x-imaging"],
    )
    tls: TlsServerConfig | None = Field(
        None, description="DICOM TLS (PS3.15 B.12); client_ca verifies client certificates"
    )
    max_pdu: int = Field(
        262144,
        ge=4096,
        le=16 * 1024 * 1024,
        description="largest PDU accepted (Maximum Length Received, bytes); a PDU announcing "
        "more is aborted",
        examples=[262144],
    )
    max_associations: int = Field(
        16, ge=1, le=1024, description="simultaneous associations; more are refused (transient)"
    )
    acse_timeout: Duration = Field(
        30.0, gt=0, description="time allowed for association negotiation", examples=["30s"]
    )
    dimse_timeout: Duration = Field(
        60.0, gt=0, description="time allowed for a DIMSE message to complete", examples=["60s"]
    )
    network_timeout: Duration = Field(
        60.0,
        gt=0,
        description="close an association idle (or stalled mid-PDU) this long",
        examples=["60s"],
    )
    journal_timeout: Duration = Field(
        30.0,
        gt=0,
        description="how long a C-STORE waits for the journal commit before answering 0xA700",
        examples=["30s"],
    )
    quota_bytes: int | None = Field(
        None,
        gt=0,
        description="largest spool size; past it instances are refused with 0xA700, and a "
        "WARNING is logged at 90%. Unset: no quota",
        examples=[100 * 1024**3],
    )
    retention: Duration = Field(
        86400.0,
        description="keep an instance this long after all its deliveries succeeded (or after "
        "it was filtered), then remove it from the spool",
        examples=["1d", "2h", "0s"],
    )

    @field_validator("ae_title")
    @classmethod
    def _title(cls, value: str) -> str:
        return _check_ae_title(value)

    @field_validator("bind")
    @classmethod
    def _check_bind(cls, value: str) -> str:
        split_bind(value)
        return value

    @property
    def host(self) -> str:
        return split_bind(self.bind)[0]

    @property
    def bind_port(self) -> int:
        return split_bind(self.bind)[1]

    def caller_allowed(self, ae_title: str, address: str) -> bool:
        """True when ``ae_title`` may associate from ``address``."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            ip = None
        for caller in self.allowed_callers:
            if caller.ae_title != ae_title:
                continue
            if caller.hosts is None:
                return True
            if ip is not None and any(
                ip in ipaddress.ip_network(h, strict=False) for h in caller.hosts
            ):
                return True
        return False


class _Rejected(Exception):
    """The instance is refused after it was spooled (quarantine, journal ``rejected``)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class _GuardedSocket(AssociationSocket):
    """An accepted association socket that refuses oversized PDUs before reading them.

    pynetdicom's DUL reads a PDU as ``recv(6)`` then ``recv(length)``; the
    second call is checked here (``recv`` is the DUL's only way in).
    """

    pdata_limit = 0

    def recv(self, nr_bytes: int) -> bytearray:
        if nr_bytes > max(self.pdata_limit, _OTHER_PDU_MAX):
            self._refuse(nr_bytes)
        return super().recv(nr_bytes)

    def _refuse(self, nr_bytes: int) -> None:
        log.warning(
            "association from %s: PDU announcing %d bytes (limit %d): aborted",
            self.assoc.requestor.address,
            nr_bytes,
            self.pdata_limit,
        )
        try:
            if self.socket is not None:
                self.socket.sendall(_ABORT_INVALID_PDU)
        except OSError:
            pass
        raise ConnectionAbortedError(f"PDU of {nr_bytes} bytes refused")


class _Handler(RequestHandler):
    """Per connection, in its own thread: TLS handshake, then the association."""

    server: _Server

    def handle(self) -> None:
        sock = self.request
        if isinstance(sock, ssl.SSLSocket):
            try:
                sock.do_handshake()
            except (OSError, ssl.SSLError) as exc:
                log.warning("DICOM TLS handshake with %s failed: %s", self.client_address[0], exc)
                sock.close()  # no association owns it yet (pynetdicom closes only on error)
                return
        super().handle()

    def _create_association(self) -> Association:
        assoc = make_event_driven(super()._create_association())
        sock = assoc.dul.socket
        if sock is not None:  # the same socket object, with the PDU guard
            sock.__class__ = _GuardedSocket
            sock.pdata_limit = self.server.max_pdu + 16  # type: ignore[attr-defined]
        return assoc


class _Server(ThreadedAssociationServer):
    """pynetdicom's threaded server with our socket options and a non-blocking accept."""

    daemon_threads = True
    block_on_close = False
    max_pdu = 0
    network_timeout: float | None = None

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        assert self.socket is not None
        client, address = self.socket.accept()
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.settimeout(self.network_timeout)
        if self.ssl_context is not None:
            client = self.ssl_context.wrap_socket(
                client, server_side=True, do_handshake_on_connect=False
            )
        return client, address

    def shutdown(self) -> None:
        socketserver.TCPServer.shutdown(self)
        self.server_close()


class DicomListener:
    """Serves one :class:`DicomListenerConfig`; journals through ``ingest`` before success."""

    def __init__(self, config: DicomListenerConfig, ingest: Ingest) -> None:
        self.config = config
        self._ingest = ingest
        self.spool = Spool(config.spool_dir.absolute(), config.quota_bytes)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.stored = 0
        self.rejected = 0

    @property
    def port(self) -> int:
        """The bound port (the OS's choice when ``bind`` says port 0)."""
        if self._server is None:
            raise RuntimeError("listener is not started")
        return int(self._server.server_address[1])

    async def start(self) -> None:
        """Open the spool, bind and start accepting; returns once bound."""
        from eai._concurrency import run_blocking

        cfg = self.config
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        await run_blocking(self.spool.open)
        ctx = server_context(cfg.tls) if cfg.tls is not None else None
        ae = AE(ae_title=cfg.ae_title)
        ae.maximum_pdu_size = cfg.max_pdu
        ae.maximum_associations = cfg.max_associations
        ae.acse_timeout = cfg.acse_timeout
        ae.dimse_timeout = cfg.dimse_timeout
        ae.network_timeout = cfg.network_timeout
        # Second line of defence behind _on_requested (fail closed if a handler breaks).
        ae.require_calling_aet = sorted({c.ae_title for c in cfg.allowed_callers})
        ae.require_called_aet = True
        for cx in AllStoragePresentationContexts:
            if cx.abstract_syntax is not None:
                ae.add_supported_context(cx.abstract_syntax, _TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification, _TRANSFER_SYNTAXES)
        handlers: list[Any] = [
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_C_STORE, self._on_store),
        ]
        server = ae.make_server(
            (cfg.host, cfg.bind_port),
            ssl_context=ctx,
            evt_handlers=handlers,
            server_class=_Server,
            request_handler=_Handler,
        )
        assert isinstance(server, _Server)
        server.max_pdu = cfg.max_pdu
        server.network_timeout = cfg.network_timeout
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name=f"dicom:{cfg.name}"
        )
        self._thread.daemon = True
        self._thread.start()
        log.info(
            "listener %s: DICOM SCP %s%s on %s (port %d)",
            cfg.name,
            cfg.ae_title,
            " over TLS" if ctx else "",
            cfg.bind,
            self.port,
        )

    async def stop(self, grace: float) -> None:
        """Refuse new associations; let those in progress finish within ``grace`` s; abort."""
        from eai._concurrency import run_blocking

        self._stopping = True
        server = self._server
        if server is None:
            return
        await run_blocking(self._shutdown, server, grace)
        self._server = None
        log.info("listener %s: stopped", self.config.name)

    def _shutdown(self, server: _Server, grace: float) -> None:
        server.shutdown()
        if self._thread is not None:
            self._thread.join(5)
        deadline = time.monotonic() + grace
        while server.active_associations and time.monotonic() < deadline:
            time.sleep(0.05)
        left = server.active_associations
        if left:
            log.warning(
                "listener %s: %d association(s) still open after %g s, aborted",
                self.config.name,
                len(left),
                grace,
            )
        for assoc in left:
            assoc.abort()

    # -- association filter (EVT_REQUESTED, in the association's thread) ---

    def _on_requested(self, event: evt.Event) -> None:
        assoc = event.assoc
        rq = assoc.requestor.primitive
        calling = str(rq.calling_ae_title).strip() if rq is not None else ""
        called = str(rq.called_ae_title).strip() if rq is not None else ""
        address = str(assoc.requestor.address)
        if self._stopping:
            verdict, why = (0x02, 0x03, 0x01), "listener stopping"
        elif called != self.config.ae_title:
            verdict, why = (0x01, 0x01, 0x07), f"called AE title {called!r} is not ours"
        elif not self.config.caller_allowed(calling, address):
            verdict, why = (0x01, 0x01, 0x03), f"calling AE title {calling!r} not allowed"
        else:
            return
        log.warning("listener %s: association from %s refused: %s", self.config.name, address, why)
        assoc.acse.send_reject(*verdict)
        assoc.kill()

    # -- C-STORE (EVT_C_STORE, in the association's thread) ----------------

    def _on_store(self, event: evt.Event) -> int:
        req = event.request
        assert isinstance(req, C_STORE)
        assoc = event.assoc
        calling = str(assoc.requestor.ae_title).strip()
        peer = f"{assoc.requestor.address}:{assoc.requestor.port}"
        meta = event.file_meta
        meta.SourceApplicationEntityTitle = calling
        head = _PREAMBLE + encode_file_meta(meta)
        stream = req.DataSet
        dataset = stream.getbuffer() if isinstance(stream, BytesIO) else memoryview(b"")
        tag = retention_tag(calling, _printable(str(req.AffectedSOPInstanceUID or "")))
        try:
            spooled = self.spool.write([head, dataset], len(head) + len(dataset), tag)
        except StoreError as exc:
            log.error(
                "listener %s: instance from %s refused (0xA700): %s", self.config.name, calling, exc
            )
            return STATUS_OUT_OF_RESOURCES
        ts = event.context.transfer_syntax
        try:
            ref = self._inspect(spooled, dataset, ts, req, calling, peer)
        except _Rejected as rej:
            return self._reject(spooled, rej, req, calling, peer)
        finally:
            dataset.release()
        return self._journal(spooled, ref)

    def _inspect(
        self,
        spooled: SpooledFile,
        dataset: memoryview,
        ts: Any,
        req: Any,
        calling: str,
        peer: str,
    ) -> InstanceRef:
        """Checks a spooled instance; raises :class:`_Rejected` with a status when refused."""
        affected_class = str(req.AffectedSOPClassUID or "")
        affected_instance = str(req.AffectedSOPInstanceUID or "")
        if not is_uid(affected_instance) or not is_uid(affected_class):
            raise _Rejected(STATUS_INVALID_UID, "the C-STORE request's SOP UIDs are not UIDs")
        found: dict[int, RawElement] = {}
        implicit, little = bool(ts.is_implicit_VR), bool(ts.is_little_endian)
        try:
            body = inflate(dataset) if ts.is_deflated else dataset
            check_framing(
                body, implicit_vr=implicit, little_endian=little, collect=_COLLECT, found=found
            )
        except DatasetFramingError as exc:
            raise _Rejected(STATUS_CANNOT_UNDERSTAND, f"dataset cannot be decoded: {exc}") from None
        try:
            header = raw_dataset(body, found, implicit, little)
            sop_class = element_text(header, 0x00080016)
            sop_instance = element_text(header, 0x00080018)
            attrs = {kw: element_text(header, _TAGS[kw]) for kw in ROUTING_KEYWORDS}
            study = element_text(header, 0x0020000D)
            series = element_text(header, 0x0020000E)
        except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds on bad input
            raise _Rejected(
                STATUS_CANNOT_UNDERSTAND, f"dataset cannot be decoded: {type(exc).__name__}: {exc}"
            ) from None
        if sop_class != affected_class:
            raise _Rejected(
                STATUS_DOES_NOT_MATCH_SOP_CLASS,
                f"dataset SOP Class UID {sop_class[:64]!r} is not the announced {affected_class}",
            )
        if not is_uid(sop_instance):
            raise _Rejected(STATUS_INVALID_UID, "the dataset's SOP Instance UID is not a UID")
        if sop_instance != affected_instance:
            raise _Rejected(
                STATUS_UID_MISMATCH,
                # no UID here: the reason is kept in clear beside the sealed file
                "the dataset's SOP Instance UID is not the one the C-STORE request announced",
            )
        return InstanceRef(
            spool_dir=str(self.spool.root),
            spool=spooled.name,
            size=spooled.size,
            sha256=spooled.sha256,
            sop_class_uid=sop_class,
            sop_instance_uid=sop_instance,
            study_instance_uid=study if is_uid(study) else "",
            series_instance_uid=series if is_uid(series) else "",
            transfer_syntax=str(ts),
            calling_ae=calling,
            peer=peer,
            attrs={k: v[:64] for k, v in attrs.items() if v},
            key=spooled.key,
        )

    def _journal(self, spooled: SpooledFile, ref: InstanceRef) -> int:
        entry = JournalEntry(
            listener=self.config.name,
            payload=ref.to_json(),
            received_at=datetime.now(UTC),
            status="received",
            content_type="dicom",
            peer=ref.peer,
            dedup_key=f"{self.config.name}|{ref.calling_ae}|{uid_digest(ref.sop_instance_uid)}",
            control_id=ref.sop_instance_uid,
            message_type=message_type_of(ref.attrs.get("Modality", ""))[:32],
            sending_application=ref.calling_ae,
            sending_facility=ref.attrs.get("InstitutionName", "")[:64],
        )
        try:
            result = self._submit(entry)
        except StoreError as exc:
            self.spool.remove(spooled.name)
            log.error(
                "listener %s: journal refused an instance (0xA700): %s", self.config.name, exc
            )
            return STATUS_OUT_OF_RESOURCES
        except TimeoutError:
            # The commit may still land: keep the file (a re-send is then a duplicate).
            log.error(
                "listener %s: no journal commit within %g s (0xA700)",
                self.config.name,
                self.config.journal_timeout,
            )
            return STATUS_OUT_OF_RESOURCES
        if result.duplicate:
            self.spool.remove(spooled.name)
            log.info(
                "listener %s: instance %s from %s already journaled (message %d): success",
                self.config.name,
                ref.sop_instance_uid,
                ref.calling_ae,
                result.message_id,
            )
        self.stored += 1
        return STATUS_SUCCESS

    def _reject(
        self, spooled: SpooledFile, rej: _Rejected, req: Any, calling: str, peer: str
    ) -> int:
        self.rejected += 1
        uid = _printable(str(req.AffectedSOPInstanceUID or ""))
        log.warning(
            "listener %s: instance from %s refused (0x%04X): %s",
            self.config.name,
            calling,
            rej.status,
            rej.reason,
        )
        try:
            self.spool.quarantine(spooled.name, rej.reason)
        except StoreError as exc:
            log.error("listener %s: %s", self.config.name, exc)
            self.spool.remove(spooled.name)
        ref = InstanceRef(
            spool_dir=str(self.spool.root),
            spool=spooled.name,
            size=spooled.size,
            sha256=spooled.sha256,
            sop_class_uid=_printable(str(req.AffectedSOPClassUID or "")),
            sop_instance_uid=uid,
            study_instance_uid="",
            series_instance_uid="",
            transfer_syntax="",
            calling_ae=calling,
            peer=peer,
            key=spooled.key,
        )
        entry = JournalEntry(
            listener=self.config.name,
            payload=ref.to_json(),
            received_at=datetime.now(UTC),
            status="rejected",
            content_type="dicom",
            peer=peer,
            dedup_key=None,
            control_id=uid,
            message_type="DICOM^C-STORE",
            sending_application=calling,
            reject_reason=f"0x{rej.status:04X}: {rej.reason} (quarantine/{spooled.name})",
        )
        try:
            self._submit(entry)
        except (StoreError, TimeoutError) as exc:
            log.error("listener %s: cannot journal a refused instance: %s", self.config.name, exc)
        return rej.status

    def _submit(self, entry: JournalEntry) -> IngestResult:
        loop = self._loop
        if loop is None or loop.is_closed():
            raise StoreError("the engine's event loop is gone")
        future: concurrent.futures.Future[IngestResult] = asyncio.run_coroutine_threadsafe(
            _awaited(self._ingest(entry)), loop
        )
        try:
            return future.result(self.config.journal_timeout)
        except TimeoutError:
            raise
        except StoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - anything else is a journal failure too
            raise StoreError(f"journal failed: {type(exc).__name__}: {exc}") from exc


async def _awaited(awaitable: Awaitable[IngestResult]) -> IngestResult:
    return await awaitable


def _printable(value: str) -> str:
    return "".join(c if 0x20 < ord(c) < 0x7F else "?" for c in value)[:64]


def _keyword_tags() -> dict[str, int]:
    from pydicom.datadict import tag_for_keyword

    return {kw: int(tag_for_keyword(kw) or 0) for kw in ROUTING_KEYWORDS}


_TAGS = _keyword_tags()
_COLLECT = frozenset(
    {*_TAGS.values(), 0x00080005, 0x00080016, 0x00080018, 0x0020000D, 0x0020000E}
)  # routing attributes, Specific Character Set, SOP and study/series UIDs


def _factory(config: DicomListenerConfig, ingest: Ingest) -> DicomListener:
    return DicomListener(config, ingest)


register_listener(
    ListenerSpec(
        type_name="dicom",
        config_model=DicomListenerConfig,
        factory=_factory,
        summary="DICOM Storage SCP (C-STORE, C-ECHO; optional TLS): spool, journal, then success",
    )
)
