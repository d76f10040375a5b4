"""The DICOM listener's C-STORE handler: spool, check, journal, then the status to answer.

Touches: files (the spool, quarantine), DB (through ``ingest``, from the association's thread).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION

from dicom_router._acceptor import StoreRequest
from dicom_router._dimse import Command, encode_file_meta
from dicom_router._scp_checks import (
    STATUS_OUT_OF_RESOURCES,
    STATUS_SUCCESS,
    Rejected,
    check_instance,
    printable,
)
from dicom_router._scp_config import DicomListenerConfig
from dicom_router._sealing import retention_tag, uid_digest
from dicom_router.content import message_type_of
from dicom_router.reference import InstanceRef
from dicom_router.spool import PendingWrite, Spool, SpooledFile
from eai.errors import StoreError
from eai.messages import IngestResult, JournalEntry
from eai.registry import Ingest, ThreadIngest

__all__ = ["StoreHandler"]

# The listener's logger: operators and tests filter on dicom_router.scp.
log = logging.getLogger("dicom_router.scp")

_PREAMBLE = b"\x00" * 128 + b"DICM"


class StoreHandler:
    """Handles the C-STOREs of one listener, in each association's thread; the listener
    sets ``loop`` and ``syncer`` (the threads making spooled files durable) at start."""

    def __init__(self, config: DicomListenerConfig, ingest: Ingest, spool: Spool) -> None:
        self.config = config
        self.spool = spool
        self._ingest = ingest
        # The engine's ingest journals straight from this thread (checked once: a
        # runtime Protocol check costs more than a C-STORE's other bookkeeping).
        self._blocking = ingest.blocking if isinstance(ingest, ThreadIngest) else None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.syncer: ThreadPoolExecutor | None = None
        self.stored = 0
        self.rejected = 0

    def on_store(self, request: StoreRequest) -> int:
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
        tag = retention_tag(calling, printable(command.affected_sop_instance_uid))
        try:
            # The fsyncs run on a sync thread while this one inspects the dataset and
            # the writer prepares the journal rows; the writer waits for them before
            # it commits (PendingWrite.durable), so the order on disk is unchanged.
            pending = self.spool.begin(
                [head, *request.dataset], len(head) + request.size, tag, self.syncer
            )
            spooled = pending.spooled
            parts = request.dataset
            dataset = parts[0] if len(parts) == 1 else memoryview(b"".join(parts))
            try:
                ref = check_instance(self.spool.root, spooled, dataset, ts, command, calling, peer)
            except Rejected as rej:
                pending.durable()
                return self._reject(spooled, rej, command, calling, peer)
        except StoreError as exc:
            log.error(
                "listener %s: instance from %s refused (0xA700): %s", self.config.name, calling, exc
            )
            return STATUS_OUT_OF_RESOURCES
        return self._journal(pending, ref)

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
        self, spooled: SpooledFile, rej: Rejected, command: Command, calling: str, peer: str
    ) -> int:
        self.rejected += 1
        uid = printable(command.affected_sop_instance_uid)
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
            sop_class_uid=printable(command.affected_sop_class_uid),
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
        loop = self.loop
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
