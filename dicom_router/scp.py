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

This module is the listener (bind, association filter, stop); its configuration
models are in :mod:`dicom_router._scp_config`, the C-STORE handling in
:mod:`dicom_router._scp_store` and the checks of a received data set in
:mod:`dicom_router._scp_checks`.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from pydicom.uid import AllTransferSyntaxes
from pynetdicom import ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, build_context
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
from dicom_router._scp_checks import (
    STATUS_CANNOT_UNDERSTAND,
    STATUS_DOES_NOT_MATCH_SOP_CLASS,
    STATUS_INVALID_UID,
    STATUS_OUT_OF_RESOURCES,
    STATUS_SUCCESS,  # noqa: F401 - a name of this module before the split
    STATUS_UID_MISMATCH,
)
from dicom_router._scp_checks import printable as _printable  # noqa: F401 - tests use it
from dicom_router._scp_config import AllowedCaller, DicomListenerConfig
from dicom_router._scp_store import StoreHandler
from dicom_router.config import is_uid
from dicom_router.spool import Spool
from eai.metrics import dicom_meter
from eai.net import parse_networks, server_context
from eai.registry import Ingest

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

_MAX_SYNC_THREADS = 8
"""Threads per listener that make spooled instances durable (fsyncs on one disk)."""
_TRANSFER_SYNTAXES = list(dict.fromkeys([*ALL_TRANSFER_SYNTAXES, *AllTransferSyntaxes]))


class DicomListener:
    """Serves one :class:`DicomListenerConfig`; journals through ``ingest`` before success."""

    def __init__(self, config: DicomListenerConfig, ingest: Ingest) -> None:
        self.config = config
        self.spool = Spool(config.spool_dir.absolute(), config.quota_bytes)
        self._store = StoreHandler(config, ingest, self.spool)
        self._meter = dicom_meter(config.name)
        self._server: Acceptor | None = None
        self._stopping = False

    @property
    def stored(self) -> int:
        """Instances answered success since the listener was made."""
        return self._store.stored

    @property
    def rejected(self) -> int:
        """Instances refused after they were spooled (quarantined)."""
        return self._store.rejected

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
        self._store.loop = asyncio.get_running_loop()
        self._stopping = False
        await run_blocking(self.spool.open)
        if self._store.syncer is None:
            self._store.syncer = ThreadPoolExecutor(
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
        syncer, self._store.syncer = self._store.syncer, None
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
        status = self._store.on_store(request)
        self._meter.answered(status, request.size)
        return status


def _supported_contexts() -> list[PresentationContext]:
    """Every storage SOP class and Verification, each with every transfer syntax we know."""
    classes = [cx.abstract_syntax for cx in AllStoragePresentationContexts]
    return [
        build_context(uid, _TRANSFER_SYNTAXES)
        for uid in dict.fromkeys([*classes, Verification])
        if uid is not None
    ]


_SUPPORTED_CONTEXTS = _supported_contexts()
