"""C-STORE SCU: sends spooled instances to one Storage SCP on reused associations (blocking).

Touches: network (outbound associations, optionally TLS; pynetdicom threads),
files (reads spool files and TLS certificates).

What :mod:`dicom_router.forward` documents as the forwarding steps, for one
destination: :class:`StoreScu` reads and checks the spool file (:meth:`StoreScu.load`),
keeps ``connections`` associations (:class:`Link`, one send at a time each),
sends and turns the answer into a :class:`DeliveryResult` or a delivery error
(:func:`store_verdict`). Every call blocks: it runs in the forwarding process
(:mod:`dicom_router._forward_child`), one thread per link. ``eai dicom send``
(:mod:`dicom_router.client`) uses :class:`ClosingAE` and :func:`tls_problem`.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
import weakref
from collections import OrderedDict
from io import BytesIO
from typing import TYPE_CHECKING, Any

from pydicom import Dataset, dcmread
from pydicom.uid import UID
from pynetdicom import AE, _config, build_context, evt
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.transport import AssociationSocket

from connectors.mllp._tls import client_context
from dicom_router._reactors import make_event_driven
from dicom_router.coercion import apply_coercion
from dicom_router.reference import InstanceRef
from dicom_router.spool import SpoolIntegrityError
from eai.errors import PermanentDeliveryError, TransientDeliveryError
from eai.messages import DeliveryResult

if TYPE_CHECKING:
    from dicom_router.forward import DicomDestinationConfig

__all__ = ["ClosingAE", "Link", "StoreScu", "store_verdict", "tls_problem"]

log = logging.getLogger("dicom_router.forward")  # the destination's logger, as before the split

# pynetdicom sends a file's dataset straight from disk (bytes as they are) only in
# this mode; without it, it decodes and re-encodes the file. The CLI sends files
# this way; this module sends the decrypted spool bytes itself (_send_raw).
_config.STORE_SEND_CHUNKED_DATASET = True

_MAX_CONTEXTS = 128  # PS3.8 9.3.2.2: presentation context ids 1..255, odd


class ClosingAE(AE):
    """An AE that closes the socket of a connection that failed.

    pynetdicom 3.0's ``AssociationSocket.connect`` drops a refused socket without
    closing it (its ``_shutdown_socket`` stops at ``shutdown()``, which fails on an
    unconnected socket): call :meth:`close_failed` after an association that did
    not establish.

    With ``event_driven``, associations get the reactors of
    :mod:`dicom_router._reactors` (no 1 ms polling); the caller then holds
    ``assoc.op_lock`` around each ``send_*`` and ``release``.
    """

    def __init__(self, ae_title: str, *, event_driven: bool = False) -> None:
        super().__init__(ae_title=ae_title)
        self._event_driven = event_driven
        self._sockets: weakref.WeakKeyDictionary[Association, socket.socket] = (
            weakref.WeakKeyDictionary()
        )

    def _create_socket(self, assoc: Association, address: Any, tls_args: Any) -> AssociationSocket:
        sock = super()._create_socket(assoc, address, tls_args)
        if self._event_driven:
            make_event_driven(assoc)
        if sock.socket is not None:
            self._sockets[assoc] = sock.socket
        return sock

    def close_failed(self, assoc: Association) -> None:
        raw = self._sockets.pop(assoc, None)
        # With TLS, ``connect`` replaced the raw socket by the SSL one wrapping it.
        wrapped = getattr(assoc.dul.socket, "socket", None)
        for sock in (wrapped, raw):
            if sock is not None:
                sock.close()


def store_verdict(status: int, address: str) -> DeliveryResult:
    """The delivery result for a C-STORE response status (PS3.4 B.2.3), or the error."""
    if status == 0x0000:
        return DeliveryResult(detail="0x0000")
    if status == 0x0001 or 0xB000 <= status <= 0xBFFF:
        return DeliveryResult(detail=f"warning 0x{status:04X}")
    text = f"{address} answered C-STORE status 0x{status:04X}"
    if 0xA700 <= status <= 0xA7FF:
        raise TransientDeliveryError(f"{text} (out of resources)")
    if 0xA900 <= status <= 0xA9FF:
        raise PermanentDeliveryError(f"{text} (dataset does not match SOP class)")
    if 0xC000 <= status <= 0xCFFF:
        raise PermanentDeliveryError(f"{text} (cannot understand)")
    raise PermanentDeliveryError(f"{text} (failure)")


_Context = tuple[str, str]  # (SOP Class UID, Transfer Syntax UID)


class Link:
    """One association and the contexts it proposed; used by one send at a time."""

    def __init__(self) -> None:
        self.assoc: Association | None = None
        self.proposed: OrderedDict[_Context, None] = OrderedDict()
        self.accepted: set[_Context] = set()
        self.last_used = 0.0
        self.lock = threading.Lock()

    @property
    def usable(self) -> bool:
        return self.assoc is not None and self.assoc.is_established


def _nodelay(event: evt.Event) -> None:
    """EVT_CONN_OPEN: Nagle's algorithm off (a C-STORE is a small request/response)."""
    sock = event.assoc.dul.socket
    raw = getattr(sock, "socket", None)
    if raw is not None:
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


class StoreScu:
    """Sends spooled instances to one Storage SCP over ``config.connections`` links."""

    def __init__(self, config: DicomDestinationConfig) -> None:
        self.config = config
        self.address = f"{config.ae_title}@{config.host}:{config.port}"
        self._ssl: ssl.SSLContext | None = (
            client_context(config.tls) if config.tls is not None else None
        )
        ae = ClosingAE(config.calling_ae, event_driven=True)
        ae.maximum_pdu_size = config.max_pdu
        ae.connection_timeout = config.connect_timeout
        ae.acse_timeout = config.acse_timeout
        ae.dimse_timeout = config.dimse_timeout
        ae.network_timeout = config.network_timeout
        self._ae = ae
        self.links = [Link() for _ in range(config.connections)]

    def release_idle(self, idle: float) -> None:
        """Releases the associations unused for ``idle`` seconds (0: all), but not one
        that is sending."""
        now = time.monotonic()
        for link in self.links:
            if not link.lock.acquire(blocking=False):
                continue  # sending now
            try:
                if link.assoc is not None and now - link.last_used >= idle:
                    self._drop(link, release=True)
            finally:
                link.lock.release()

    def send(self, link: Link, ref: InstanceRef) -> DeliveryResult:
        """C-STORE the instance of ``ref`` on ``link``; raises the delivery errors."""
        with link.lock:
            source = self.load(ref)
            context = (ref.sop_class_uid, ref.transfer_syntax)
            assoc = self._association(link, context)
            try:
                with _op_lock(assoc):
                    if isinstance(source, Dataset):
                        status = assoc.send_c_store(source)
                    else:
                        status = _send_raw(assoc, ref, source)
            except (OSError, RuntimeError, ValueError) as exc:
                self._drop(link, release=False)
                raise TransientDeliveryError(f"{self.address}: C-STORE failed: {exc}") from exc
            link.last_used = time.monotonic()
            if "Status" not in status:
                self._drop(link, release=False)
                raise TransientDeliveryError(
                    f"{self.address}: no C-STORE response (aborted, or nothing within "
                    f"{self.config.dimse_timeout:g} s)"
                )
            return store_verdict(int(status.Status), self.address)

    def load(self, ref: InstanceRef) -> memoryview | Dataset:
        """The dataset bytes as received (decrypted, checked), or the coerced copy."""
        try:
            data = ref.read()
        except ValueError as exc:  # not a spool name, or SpoolIntegrityError
            if isinstance(exc, SpoolIntegrityError):
                log.error("destination %s: %s", self.config.name, exc)
            raise PermanentDeliveryError(str(exc)) from exc
        except FileNotFoundError as exc:
            raise PermanentDeliveryError(
                f"spool file {ref.spool} is gone (removed by retention, or the spool moved)"
            ) from exc
        except OSError as exc:
            raise TransientDeliveryError(f"spool file {ref.spool}: {exc.strerror or exc}") from exc
        if not ref.coerce:
            try:
                return memoryview(data)[_dataset_offset(data) :]
            except ValueError as exc:
                raise PermanentDeliveryError(f"spool file {ref.spool}: {exc}") from exc
        try:
            ds = dcmread(BytesIO(data))
            apply_coercion(ds, ref.coerce)
        except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds
            raise PermanentDeliveryError(
                f"cannot mark instance {ref.sop_instance_uid}: {type(exc).__name__}: {exc}"
            ) from exc
        return ds

    def _association(self, link: Link, context: _Context) -> Association:
        cfg = self.config
        if link.usable and context in link.accepted:
            assert link.assoc is not None
            if time.monotonic() - link.last_used < cfg.idle_release:
                return link.assoc
        if link.usable and context in link.proposed and context not in link.accepted:
            raise PermanentDeliveryError(
                f"{self.address} does not accept SOP class {context[0]} "
                f"in transfer syntax {_ts_name(context[1])}"
            )
        self._drop(link, release=True)
        wanted = OrderedDict(link.proposed)
        wanted[context] = None
        wanted.move_to_end(context)
        while len(wanted) > _MAX_CONTEXTS:
            wanted.popitem(last=False)
        contexts = [build_context(sop, ts) for sop, ts in wanted]
        tls_args = None
        if self._ssl is not None:
            hostname = (cfg.tls.server_hostname if cfg.tls else None) or cfg.host
            tls_args = (self._ssl, hostname)
        assoc = self._ae.associate(
            cfg.host,
            cfg.port,
            contexts=contexts,
            ae_title=cfg.ae_title,
            max_pdu=cfg.max_pdu,
            tls_args=tls_args,
            evt_handlers=[(evt.EVT_CONN_OPEN, _nodelay)],
        )
        if not assoc.is_established:
            self._ae.close_failed(assoc)
            raise self._refusal(assoc)
        link.assoc = assoc
        link.proposed = wanted
        link.accepted = {
            (str(cx.abstract_syntax), str(cx.transfer_syntax[0]))
            for cx in assoc.accepted_contexts
            if cx.transfer_syntax
        }
        link.last_used = time.monotonic()
        log.debug("destination %s: associated with %s", cfg.name, self.address)
        if context not in link.accepted:
            raise PermanentDeliveryError(
                f"{self.address} does not accept SOP class {context[0]} "
                f"in transfer syntax {_ts_name(context[1])}"
            )
        return assoc

    def _refusal(self, assoc: Association) -> Exception:
        if assoc.is_rejected:
            rj: Any = assoc.acceptor.primitive
            why = f"{rj.result_str}, {rj.source_str}: {rj.reason_str}" if rj is not None else ""
            text = f"{self.address} rejected the association ({why})"
            if rj is not None and rj.result == 0x01:
                return PermanentDeliveryError(text)
            return TransientDeliveryError(text)
        if self._ssl is not None:
            cfg = self.config
            hostname = (cfg.tls.server_hostname if cfg.tls else None) or cfg.host
            problem = tls_problem(self._ssl, cfg.host, cfg.port, hostname, cfg.connect_timeout)
            if problem:
                return TransientDeliveryError(f"{self.address}: TLS handshake failed: {problem}")
        if assoc.is_aborted:
            return TransientDeliveryError(f"{self.address} aborted the association")
        return TransientDeliveryError(f"{self.address}: cannot connect or negotiate")

    def _drop(self, link: Link, *, release: bool) -> None:
        assoc, link.assoc = link.assoc, None
        link.accepted = set()
        if assoc is None:
            return
        try:
            with _op_lock(assoc):
                if release and assoc.is_established:
                    assoc.release()
                elif assoc.is_established or assoc.is_alive():
                    assoc.abort()
        except Exception:  # noqa: BLE001 - closing is best effort
            log.debug("destination %s: closing an association failed", self.config.name)


def _op_lock(assoc: Association) -> threading.Lock | contextlib.nullcontext[None]:
    """The lock an event-driven requestor's reactor takes between operations."""
    lock = getattr(assoc, "op_lock", None)
    return lock if isinstance(lock, type(threading.Lock())) else contextlib.nullcontext()


def _dataset_offset(part10: bytes) -> int:
    """Where the dataset starts in a Part-10 file: after the preamble and group 0002
    (explicit VR little endian, PS3.10 7.1)."""
    if part10[128:132] != b"DICM":
        raise ValueError("not a DICOM Part-10 file")
    pos = 132
    while pos + 8 <= len(part10) and part10[pos : pos + 2] == b"\x02\x00":
        vr = part10[pos + 4 : pos + 6]
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"UC", b"UR", b"OD", b"OL", b"OV"):
            length = int.from_bytes(part10[pos + 8 : pos + 12], "little")
            pos += 12 + length
        else:
            length = int.from_bytes(part10[pos + 6 : pos + 8], "little")
            pos += 8 + length
    if pos > len(part10):
        raise ValueError("File Meta Information is truncated")
    return pos


def _send_raw(assoc: Association, ref: InstanceRef, dataset: memoryview) -> Dataset:
    """C-STORE ``dataset`` (encoded bytes, sent as they are) on ``assoc``; the response status.

    pynetdicom's ``send_c_store`` sends bytes as they are only from a file; this is
    its sequence (``association.py``) for bytes in memory, in the instance's own
    transfer syntax (no conversion).
    """
    context = assoc._get_valid_context(
        UID(ref.sop_class_uid), UID(ref.transfer_syntax), "scu", allow_conversion=False
    )
    req = C_STORE()
    req.MessageID = 1
    req.Priority = 2
    req.AffectedSOPClassUID = ref.sop_class_uid
    req.AffectedSOPInstanceUID = ref.sop_instance_uid
    req.DataSet = BytesIO(dataset)
    assoc._reactor_checkpoint.clear()
    while not assoc._is_paused:
        time.sleep(0.0001)
    try:
        assoc.dimse.send_msg(req, int(context.context_id or 0))
        _cx, rsp = assoc.dimse.get_msg(block=True)
    finally:
        assoc._reactor_checkpoint.set()
    if rsp is None:
        assoc._handle_no_response()
        return Dataset()
    return assoc._check_received_status(rsp)


def _ts_name(uid: str) -> str:
    return f"{UID(uid).name} ({uid})"


def tls_problem(
    ctx: ssl.SSLContext, host: str, port: int, server_hostname: str, timeout: float
) -> str:
    """Why a TLS handshake with ``host:port`` fails ('' if it succeeds or TCP fails).

    pynetdicom only logs the handshake error of an association (``transport.py``,
    ``AssociationSocket.connect``): after a failed association, one more handshake
    (nothing else sent) gives the reason for ``last_error`` (e.g. "certificate
    verify failed").
    """
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            ctx.wrap_socket(raw, server_hostname=server_hostname),
        ):
            return ""
    except ssl.SSLCertVerificationError as exc:
        return f"certificate verify failed: {exc.verify_message}"
    except ssl.SSLError as exc:
        return str(exc.reason or exc)
    except OSError:
        return ""
