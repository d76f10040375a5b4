"""The forwarder's C-STORE SCU: sends spooled instances to one Storage SCP (blocking).

Touches: network (through :mod:`dicom_router._scu`), files (reads spool files and
TLS certificates).

What :mod:`dicom_router.forward` documents as the forwarding steps, for one
destination: :class:`StoreScu` reads and checks the spool file
(:meth:`StoreScu.load`), sends it with the package's one SCU
(:class:`dicom_router._scu.Scu`: ``connections`` links, reused associations,
each a :class:`dicom_router._requestor.Requestor`) and turns the answer into a
:class:`DeliveryResult` or a delivery error (:func:`store_verdict`). Every call
blocks: it runs in the forwarding process (:mod:`dicom_router._forward_child`),
one thread per link. ``eai dicom send|echo`` (:mod:`dicom_router.client`) use
the same SCU.
"""

from __future__ import annotations

import logging
from io import BytesIO
from typing import TYPE_CHECKING

from pydicom import Dataset, dcmread
from pydicom.uid import UID
from pynetdicom.dsutils import encode

from dicom_router._scu import Link, Scu, Target, tls_reason
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


class StoreScu(Scu):
    """Sends spooled instances to one Storage SCP over ``config.connections`` links."""

    def __init__(self, config: DicomDestinationConfig) -> None:
        self.config = config
        tls = config.tls
        target = Target(
            name=config.name,
            host=config.host,
            port=config.port,
            ae_title=config.ae_title,
            calling_ae=config.calling_ae,
            max_pdu=config.max_pdu,
            connect_timeout=config.connect_timeout,
            acse_timeout=config.acse_timeout,
            network_timeout=config.network_timeout,
            dimse_timeout=config.dimse_timeout,
            idle_release=config.idle_release,
            ssl_context=client_context(tls) if tls is not None else None,
            server_hostname=tls.server_hostname if tls is not None else None,
        )
        super().__init__(target, config.connections)

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
            status = self.store(link, context, sop_instance, data, sop_class=sop_class)
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
