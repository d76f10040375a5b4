"""The DICOM listener: a C-ECHO / C-STORE SCP that spools, journals, then answers.

Touches: network (binds a server socket; one thread per association), files (spool,
TLS certificates), the journal (through the engine's ingest, from the
association's thread).

Registered as listener type ``dicom``. Each association is served in its own
thread (as pynetdicom does, ``association.py``); our C-STORE callback runs
there and may block:

1. write the Part-10 file (preamble, File Meta Information, the dataset bytes
   exactly as received, in their transfer syntax) to the spool, encrypted under
   a fresh data key: temp file, fsync, rename to a router-made name, fsync the
   directory (:class:`dicom_router.spool.Spool`); failure: 0xA700;
2. check it: the encoded dataset is complete (:mod:`dicom_router._framing`),
   pydicom reads its header, SOP Class and Instance UIDs are UIDs and match
   the C-STORE request, and the Study and Series Instance UIDs (the router
   orders deliveries by study) are UIDs when present (PS3.5 9.1: digits and
   dots, no leading zero, at most 64 characters); failure: the file goes to
   ``quarantine/`` with its reason, the instance is journaled ``rejected``,
   the answer is 0xA900 (SOP class mismatch) or 0xC000-0xC002 (cannot
   understand; 0xC001 for every UID that is not one: a malformed UI value is an
   encoding error the SCP cannot interpret, not a data set of another SOP class);
3. journal the reference, with the data key (the engine's ingest called in the
   association's thread, :class:`eai.registry.ThreadIngest`, straight to the
   writer thread, waiting for the commit; the journal encrypts it; any other
   ingest goes through the engine's loop); a journal failure removes
   the spool file and answers 0xA700;
4. only then answer 0x0000. A re-sent instance (same listener, calling AE and
   SOP Instance UID: dedup key ``<listener>|<AE>|sha256:<hex of the UID>``, the
   spool file's retention tag) is answered success and not routed twice.

Associations are served by :mod:`dicom_router._acceptor`, a thread per
association reading its blocking socket (:mod:`dicom_router._pdu_io`), with our
own P-DATA / DIMSE codec (:mod:`dicom_router._pdu`, :mod:`dicom_router._dimse`);
pynetdicom's public ``pdu`` and ``presentation`` modules are used only to decode
the A-ASSOCIATE-RQ, negotiate the presentation contexts and encode the
A-ASSOCIATE-AC/RJ (:mod:`dicom_router._acse`). No pynetdicom DIMSE runs in the
router (SCP or SCU), so none of its identifier logging applies. The C-STORE
callback above gets the data set as the views of the received PDUs (no copy,
no pydicom decoding of the command set), and the File Meta Information is
encoded from a byte template, as pynetdicom's ``encode_file_meta`` would write
it.

Associations are filtered when requested (PS3.8 7.1.1.9): a called AE title
that is not ours gets A-ASSOCIATE-RJ permanent / "called-AE-title-not-
recognized", a calling AE title (and source address) not on
``allowed_callers`` gets "calling-AE-title-not-recognized", a listener
stopping gets transient / "temporary-congestion", and past
``max_associations`` the acceptor refuses with transient / "local-limit-exceeded".

Sockets: TCP_NODELAY on (with Nagle's algorithm, a C-STORE round trip on
loopback waits for delayed ACKs: ~20 instead of hundreds of images/s), a
``network_timeout`` on every accepted socket (a peer that stops mid-PDU cannot
hold a thread forever), ``acse_timeout`` for the A-ASSOCIATE-RQ, the TLS
handshake in the association's thread with the network timeout (not in the
accept loop, where one silent client would stall every other), and a PDU
length guard: a PDU announcing more than ``max_pdu`` (P-DATA) or 1 MiB
(others) is answered A-ABORT and the connection closed before anything is
read into memory.

The routing attributes are taken from the received buffer during the framing
check (``check_framing(collect=...)``), not by decoding the dataset again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import logging
import re
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydicom.uid import UID, AllTransferSyntaxes
from pynetdicom import (
    ALL_TRANSFER_SYNTAXES,
    PYNETDICOM_IMPLEMENTATION_UID,
    PYNETDICOM_IMPLEMENTATION_VERSION,
    AllStoragePresentationContexts,
    build_context,
)
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from dicom_router._acceptor import (
    REJECT_CALLED_AE,
    REJECT_CALLING_AE,
    REJECT_CONGESTION,
    Acceptor,
    StoreRequest,
    Verdict,
)
from dicom_router._dimse import Command, encode_file_meta
from dicom_router._elements import collected_texts
from dicom_router._framing import DatasetFramingError, RawElement, check_framing, inflate
from dicom_router._sealing import retention_tag, uid_digest
from dicom_router.config import is_uid
from dicom_router.content import message_type_of
from dicom_router.reference import ROUTING_KEYWORDS, InstanceRef
from dicom_router.spool import PendingWrite, Spool, SpooledFile
from eai.config import Duration, ListenerConfig, Model, TlsServerConfig
from eai.errors import StoreError
from eai.messages import MEDIA_DICOM_REF, IngestResult, JournalEntry
from eai.net import check_networks, parse_networks, server_context, split_bind
from eai.registry import Ingest, ListenerSpec, ThreadIngest, register_listener

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

STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700
"""Refused: out of resources (spool full or unwritable, journal unavailable); retry later."""
STATUS_DOES_NOT_MATCH_SOP_CLASS = 0xA900
"""Error: the dataset's SOP Class UID is not the one the C-STORE request announced."""
STATUS_CANNOT_UNDERSTAND = 0xC000
"""Error: the dataset cannot be decoded (truncated, malformed)."""
STATUS_INVALID_UID = 0xC001
"""Error: a UID the router keys on (SOP Class, SOP Instance, Study or Series Instance)
is not a UID (e.g. contains ``../``)."""
STATUS_UID_MISMATCH = 0xC002
"""Error: the dataset's SOP Instance UID is not the one the C-STORE request announced."""

_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # PS3.5 AE: no backslash, no control
_PREAMBLE = b"\x00" * 128 + b"DICM"
_MAX_SYNC_THREADS = 8
"""Threads per listener that make spooled instances durable (fsyncs on one disk)."""
_TRANSFER_SYNTAXES = list(dict.fromkeys([*ALL_TRANSFER_SYNTAXES, *AllTransferSyntaxes]))


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
        16,
        ge=1,
        le=1024,
        description="simultaneous established associations; more are refused (transient). "
        "Connections still negotiating are counted apart (at most max(64, 4 x this); past "
        "it a new connection evicts the one negotiating for the longest)",
    )
    allowed_networks: tuple[str, ...] = Field(
        (),
        description="source addresses or networks (CIDR) allowed to connect; a connection "
        "from elsewhere is closed at accept, unread. Empty: any address (allowed_callers "
        "hosts still apply to each AE title)",
        examples=[["10.1.8.0/24", "192.168.40.17"]],
    )
    max_associations_per_peer: int = Field(
        8,
        ge=1,
        description="simultaneous connections (negotiating or established) from one source "
        "address; one more is closed at once",
        examples=[8],
    )
    max_instance_size: int = Field(
        2 * 1024**3,
        ge=64 * 1024,
        description="largest data set accepted (bytes); a larger instance is read, dropped "
        "and answered 0xA700. Each association holds its instance in memory until it is "
        "spooled: at most max_associations x this",
        examples=[2147483648],
    )
    acse_timeout: Duration = Field(
        30.0,
        gt=0,
        description="time from a connection's accept (TLS handshake included) to its "
        "A-ASSOCIATE-RQ being answered (ARTIM); a connection still negotiating then is closed",
        examples=["30s"],
    )
    dimse_timeout: Duration = Field(
        60.0,
        gt=0,
        description="time allowed to receive a whole DIMSE message (command and data set) "
        "once it started; an association still sending it then is aborted",
        examples=["60s"],
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

    @field_validator("allowed_networks")
    @classmethod
    def _check_networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return check_networks(value)

    @property
    def host(self) -> str:
        return split_bind(self.bind)[0]

    @property
    def bind_port(self) -> int:
        return split_bind(self.bind)[1]

    def caller_allowed(self, ae_title: str, address: str) -> bool:
        """True when ``ae_title`` may associate from ``address``."""
        return self.caller_refusal(ae_title, address) is None

    def caller_refusal(self, ae_title: str, address: str) -> str | None:
        """Why ``ae_title`` may not associate from ``address`` (its title is unknown, or
        it comes from a host its entry does not list), or None when it may."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            ip = None
        hosts: list[str] = []
        for caller in self.allowed_callers:
            if caller.ae_title != ae_title:
                continue
            if caller.hosts is None:
                return None
            if ip is not None and any(
                ip in ipaddress.ip_network(h, strict=False) for h in caller.hosts
            ):
                return None
            hosts.extend(caller.hosts)
        if not hosts:
            return f"calling AE title {ae_title!r} is not in allowed_callers"
        return (
            f"host {address} refused: calling AE title {ae_title!r} is allowed only from "
            f"{', '.join(hosts)}"
        )


class _Rejected(Exception):
    """The instance is refused after it was spooled (quarantine, journal ``rejected``)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class DicomListener:
    """Serves one :class:`DicomListenerConfig`; journals through ``ingest`` before success."""

    def __init__(self, config: DicomListenerConfig, ingest: Ingest) -> None:
        self.config = config
        self._ingest = ingest
        # The engine's ingest journals straight from this thread (checked once: a
        # runtime Protocol check costs more than a C-STORE's other bookkeeping).
        self._blocking = ingest.blocking if isinstance(ingest, ThreadIngest) else None
        self.spool = Spool(config.spool_dir.absolute(), config.quota_bytes)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Acceptor | None = None
        self._syncer: ThreadPoolExecutor | None = None
        self._stopping = False
        self.stored = 0
        self.rejected = 0

    @property
    def port(self) -> int:
        """The bound port (the OS's choice when ``bind`` says port 0)."""
        if self._server is None:
            raise RuntimeError("listener is not started")
        return self._server.port

    async def start(self) -> None:
        """Open the spool, bind and start accepting; returns once bound."""
        from eai.net import run_blocking

        cfg = self.config
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        await run_blocking(self.spool.open)
        if self._syncer is None:
            self._syncer = ThreadPoolExecutor(
                max_workers=min(_MAX_SYNC_THREADS, cfg.max_associations),
                thread_name_prefix=f"dicom-sync:{cfg.name}",
            )
        ctx = server_context(cfg.tls) if cfg.tls is not None else None
        server = Acceptor(
            name=cfg.name,
            host=cfg.host,
            port=cfg.bind_port,
            contexts=_SUPPORTED_CONTEXTS,
            screen=self._on_requested,
            on_store=self._on_store,
            ssl_context=ctx,
            max_pdu=cfg.max_pdu,
            max_associations=cfg.max_associations,
            acse_timeout=cfg.acse_timeout,
            network_timeout=cfg.network_timeout,
            dimse_timeout=cfg.dimse_timeout,
            max_dataset=cfg.max_instance_size,
            allowed_networks=parse_networks(cfg.allowed_networks),
            max_per_peer=cfg.max_associations_per_peer,
        )
        server.start()
        self._server = server
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
        from eai.net import run_blocking

        self._stopping = True
        server = self._server
        if server is None:
            return
        left = await run_blocking(server.stop, grace)
        if left:
            log.warning(
                "listener %s: %d association(s) still open after %g s, aborted",
                self.config.name,
                left,
                grace,
            )
        self._server = None
        syncer, self._syncer = self._syncer, None
        if syncer is not None:
            await run_blocking(syncer.shutdown)
        log.info("listener %s: stopped", self.config.name)

    # -- association filter (in the association's thread) ------------------

    def _on_requested(self, calling: str, called: str, address: str) -> Verdict | None:
        """None to go on negotiating, or the A-ASSOCIATE-RJ verdict."""
        if self._stopping:
            verdict, why = REJECT_CONGESTION, "listener stopping"
        elif called != self.config.ae_title:
            verdict, why = REJECT_CALLED_AE, f"called AE title {called!r} is not ours"
        elif (refusal := self.config.caller_refusal(calling, address)) is not None:
            verdict, why = REJECT_CALLING_AE, refusal
        else:
            return None
        log.warning("listener %s: association from %s refused: %s", self.config.name, address, why)
        return verdict

    # -- C-STORE (in the association's thread) ------------------------------

    def _on_store(self, request: StoreRequest) -> int:
        command = request.command
        calling = request.calling_ae
        peer = f"{request.address[0]}:{request.address[1]}"
        ts = request.transfer_syntax
        head = _PREAMBLE + encode_file_meta(
            command.affected_sop_class_uid,
            command.affected_sop_instance_uid,
            str(ts),
            calling,
            PYNETDICOM_IMPLEMENTATION_UID,
            PYNETDICOM_IMPLEMENTATION_VERSION,
        )
        tag = retention_tag(calling, _printable(command.affected_sop_instance_uid))
        try:
            # The fsyncs run on a sync thread while this one inspects the dataset and
            # the writer prepares the journal rows; the writer waits for them before
            # it commits (PendingWrite.durable), so the order on disk is unchanged.
            pending = self.spool.begin(
                [head, *request.dataset], len(head) + request.size, tag, self._syncer
            )
            spooled = pending.spooled
            parts = request.dataset
            dataset = parts[0] if len(parts) == 1 else memoryview(b"".join(parts))
            try:
                ref = self._inspect(spooled, dataset, ts, command, calling, peer)
            except _Rejected as rej:
                pending.durable()
                return self._reject(spooled, rej, command, calling, peer)
        except StoreError as exc:
            log.error(
                "listener %s: instance from %s refused (0xA700): %s", self.config.name, calling, exc
            )
            return STATUS_OUT_OF_RESOURCES
        return self._journal(pending, ref)

    def _inspect(
        self,
        spooled: SpooledFile,
        dataset: memoryview,
        ts: UID,
        command: Command,
        calling: str,
        peer: str,
    ) -> InstanceRef:
        """Checks a spooled instance; raises :class:`_Rejected` with a status when refused."""
        affected_class = command.affected_sop_class_uid
        affected_instance = command.affected_sop_instance_uid
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
            texts = collected_texts(body, found, _TEXT_TAGS, implicit, little)
            sop_class = texts[0x00080016]
            sop_instance = texts[0x00080018]
            attrs = {kw: texts[_TAGS[kw]] for kw in ROUTING_KEYWORDS}
            study = texts[0x0020000D]
            series = texts[0x0020000E]
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
        for name, value in (("Study", study), ("Series", series)):
            if value and not is_uid(value):
                raise _Rejected(
                    STATUS_INVALID_UID, f"the dataset's {name} Instance UID is not a UID"
                )
        return InstanceRef(
            spool_dir=str(self.spool.root),
            spool=spooled.name,
            size=spooled.size,
            sha256=spooled.sha256,
            sop_class_uid=sop_class,
            sop_instance_uid=sop_instance,
            study_instance_uid=study,
            series_instance_uid=series,
            transfer_syntax=str(ts),
            calling_ae=calling,
            peer=peer,
            attrs={k: v[:64] for k, v in attrs.items() if v},
            key=spooled.key,
        )

    def _journal(self, pending: PendingWrite, ref: InstanceRef) -> int:
        spooled = pending.spooled
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
            content_size=ref.size,
            answered=f"0x{STATUS_SUCCESS:04X}",
        )
        try:
            result = self._submit(entry, pending.durable)
        except StoreError as exc:
            self._discard(pending)
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
        self, spooled: SpooledFile, rej: _Rejected, command: Command, calling: str, peer: str
    ) -> int:
        self.rejected += 1
        uid = _printable(command.affected_sop_instance_uid)
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
            sop_class_uid=_printable(command.affected_sop_class_uid),
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
            content_size=spooled.size,
            answered=f"0x{rej.status:04X}",
        )
        try:
            self._submit(entry)
        except (StoreError, TimeoutError) as exc:
            log.error("listener %s: cannot journal a refused instance: %s", self.config.name, exc)
        return rej.status

    def _discard(self, pending: PendingWrite) -> None:
        """Removes an instance that will not be journaled, once its rename is done."""
        try:
            pending.durable()
        except StoreError:
            return  # nothing was left behind
        self.spool.remove(pending.spooled.name)

    def _submit(
        self, entry: JournalEntry, before_commit: Callable[[], object] | None = None
    ) -> IngestResult:
        """Journals ``entry`` from the association's thread; returns after the commit,
        which comes after ``before_commit()`` returned (its exception fails the entry)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            raise StoreError("the engine's event loop is gone")
        try:
            if self._blocking is not None:  # the engine's: straight to its writer
                return self._blocking(entry, self.config.journal_timeout, before_commit)
            if before_commit is not None:
                before_commit()
            future: concurrent.futures.Future[IngestResult] = asyncio.run_coroutine_threadsafe(
                _awaited(self._ingest(entry)), loop
            )
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
    """``value``'s first 64 characters, each outside printable ASCII (or a space) as '?'."""
    value = value[:64]
    if value.isascii() and value.isprintable() and " " not in value:
        return value  # the usual UID
    return "".join(c if 0x20 < ord(c) < 0x7F else "?" for c in value)


def _keyword_tags() -> dict[str, int]:
    from pydicom.datadict import tag_for_keyword

    return {kw: int(tag_for_keyword(kw) or 0) for kw in ROUTING_KEYWORDS}


_TAGS = _keyword_tags()
_TEXT_TAGS = (*_TAGS.values(), 0x00080016, 0x00080018, 0x0020000D, 0x0020000E)
"""Read at reception: the routing attributes, the SOP and study/series UIDs."""
_COLLECT = frozenset({*_TEXT_TAGS, 0x00080005})  # and the Specific Character Set


def _supported_contexts() -> list[PresentationContext]:
    """Every storage SOP class and Verification, each with every transfer syntax we know."""
    classes = [cx.abstract_syntax for cx in AllStoragePresentationContexts]
    return [
        build_context(uid, _TRANSFER_SYNTAXES)
        for uid in dict.fromkeys([*classes, Verification])
        if uid is not None
    ]


_SUPPORTED_CONTEXTS = _supported_contexts()


def _factory(config: DicomListenerConfig, ingest: Ingest) -> DicomListener:
    return DicomListener(config, ingest)


register_listener(
    ListenerSpec(
        type_name="dicom",
        config_model=DicomListenerConfig,
        factory=_factory,
        summary="DICOM Storage SCP (C-STORE, C-ECHO; optional TLS): spool, journal, then success",
        produces=(MEDIA_DICOM_REF,),
    )
)
