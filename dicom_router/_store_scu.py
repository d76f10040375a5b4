"""C-STORE SCU: sends spooled instances to one Storage SCP on reused associations (blocking).

Touches: network (outbound associations, optionally TLS), files (reads spool
files and TLS certificates).

What :mod:`dicom_router.forward` documents as the forwarding steps, for one
destination: :class:`StoreScu` reads and checks the spool file (:meth:`StoreScu.load`),
keeps ``connections`` associations (:class:`Link`, one send at a time each,
a :class:`dicom_router._requestor.Requestor`: no thread of its own, no pynetdicom
machinery past the A-ASSOCIATE PDUs), sends and turns the answer into a
:class:`DeliveryResult` or a delivery error (:func:`store_verdict`). Every call
blocks: it runs in the forwarding process (:mod:`dicom_router._forward_child`),
one thread per link. ``eai dicom send`` (:mod:`dicom_router.client`, pynetdicom's
requestor) shares :func:`tls_reason`.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections import OrderedDict
from io import BytesIO
from typing import TYPE_CHECKING

from pydicom import Dataset, dcmread
from pydicom.uid import UID
from pynetdicom.dsutils import encode

from dicom_router._dimse import ProtocolError
from dicom_router._requestor import MAX_CONTEXTS, Aborted, NoResponse, Rejected, Requestor
from dicom_router.coercion import apply_coercion
from dicom_router.reference import InstanceRef
from dicom_router.spool import SpoolIntegrityError
from eai.errors import PermanentDeliveryError, TransientDeliveryError
from eai.messages import DeliveryResult
from eai.net import client_context

if TYPE_CHECKING:
    from dicom_router.forward import DicomDestinationConfig

__all__ = ["Link", "StoreScu", "store_verdict", "tls_reason"]

log = logging.getLogger("dicom_router.forward")  # the destination's logger, as before the split


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
        self.assoc: Requestor | None = None
        self.proposed: OrderedDict[_Context, None] = OrderedDict()
        self.last_used = 0.0
        self.lock = threading.Lock()


class StoreScu:
    """Sends spooled instances to one Storage SCP over ``config.connections`` links."""

    def __init__(self, config: DicomDestinationConfig) -> None:
        self.config = config
        self.address = f"{config.ae_title}@{config.host}:{config.port}"
        self._ssl: ssl.SSLContext | None = (
            client_context(config.tls) if config.tls is not None else None
        )
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
            sop_class, sop_instance = ref.sop_class_uid, ref.sop_instance_uid
            if isinstance(source, Dataset):
                sop_class = str(source.get("SOPClassUID", sop_class))
                sop_instance = str(source.get("SOPInstanceUID", sop_instance))
                data: bytes | memoryview = _encode(source, ref)
            else:
                data = source
            assoc = self._association(link, context)
            cfg = self.config
            try:
                status = assoc.store(
                    context, sop_instance, data, cfg.dimse_timeout, sop_class_uid=sop_class
                )
            except (Aborted, NoResponse) as exc:
                self._drop(link, release=False)
                raise TransientDeliveryError(
                    f"{self.address}: no C-STORE response (aborted, or nothing within "
                    f"{cfg.dimse_timeout:g} s)"
                ) from exc
            except (OSError, ProtocolError) as exc:
                self._drop(link, release=False)
                raise TransientDeliveryError(f"{self.address}: C-STORE failed: {exc}") from exc
            link.last_used = time.monotonic()
            return store_verdict(status, self.address)

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

    def _association(self, link: Link, context: _Context) -> Requestor:
        cfg = self.config
        current = link.assoc
        if current is not None and current.alive():
            if context in current.accepted:
                if time.monotonic() - link.last_used < cfg.idle_release:
                    return current
            elif context in link.proposed:
                raise PermanentDeliveryError(
                    f"{self.address} does not accept SOP class {context[0]} "
                    f"in transfer syntax {_ts_name(context[1])}"
                )
        self._drop(link, release=True)
        wanted = OrderedDict(link.proposed)
        wanted[context] = None
        wanted.move_to_end(context)
        while len(wanted) > MAX_CONTEXTS:
            wanted.popitem(last=False)
        hostname = (cfg.tls.server_hostname if cfg.tls else None) or cfg.host
        try:
            assoc = Requestor.open(
                cfg.host,
                cfg.port,
                list(wanted),
                calling_ae=cfg.calling_ae,
                called_ae=cfg.ae_title,
                max_pdu=cfg.max_pdu,
                connect_timeout=cfg.connect_timeout,
                acse_timeout=cfg.acse_timeout,
                network_timeout=cfg.network_timeout,
                ssl_context=self._ssl,
                server_hostname=hostname,
            )
        except Rejected as exc:
            text = f"{self.address} rejected the association ({exc})"
            if exc.permanent:
                raise PermanentDeliveryError(text) from exc
            raise TransientDeliveryError(text) from exc
        except ssl.SSLError as exc:
            raise TransientDeliveryError(
                f"{self.address}: TLS handshake failed: {tls_reason(exc)}"
            ) from exc
        except Aborted as exc:
            raise TransientDeliveryError(f"{self.address} aborted the association") from exc
        except NoResponse as exc:
            raise TransientDeliveryError(f"{self.address}: {exc}") from exc
        except (OSError, ProtocolError) as exc:
            raise TransientDeliveryError(
                f"{self.address}: cannot connect or negotiate: {_os_reason(exc)}"
            ) from exc
        link.assoc = assoc
        link.proposed = wanted
        link.last_used = time.monotonic()
        log.debug("destination %s: associated with %s", cfg.name, self.address)
        if context not in assoc.accepted:
            raise PermanentDeliveryError(
                f"{self.address} does not accept SOP class {context[0]} "
                f"in transfer syntax {_ts_name(context[1])}"
            )
        return assoc

    def _drop(self, link: Link, *, release: bool) -> None:
        assoc, link.assoc = link.assoc, None
        if assoc is None:
            return
        try:
            if release:
                assoc.release()
            else:
                assoc.abort()
        except Exception:  # noqa: BLE001 - closing is best effort
            log.debug("destination %s: closing an association failed", self.config.name)
            assoc.close()


def _encode(ds: Dataset, ref: InstanceRef) -> bytes:
    """The coerced ``ds`` encoded in the instance's transfer syntax (as pynetdicom's
    ``send_c_store`` does)."""
    syntax = UID(ref.transfer_syntax)
    try:
        data = encode(ds, syntax.is_implicit_VR, syntax.is_little_endian, syntax.is_deflated)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds
        raise PermanentDeliveryError(
            f"cannot encode the marked instance: {type(exc).__name__}: {exc}"
        ) from exc
    if data is None:
        raise PermanentDeliveryError("cannot encode the marked instance")
    return data


def _os_reason(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


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


def _ts_name(uid: str) -> str:
    return f"{UID(uid).name} ({uid})"


def tls_reason(exc: ssl.SSLError) -> str:
    """The reason of a TLS failure, e.g. "certificate verify failed: ..."."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    return str(exc.reason or exc)
