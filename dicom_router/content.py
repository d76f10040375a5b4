"""The ``dicom`` content type: a journaled instance reference as routes see it.

Touches: files (reads and decrypts a spool file when a route tests a tag that
the reference does not carry).

What routes see:

* ``header.message_type``: ``DICOM^<Modality>`` (``DICOM^CT``), ``DICOM^C-STORE``
  when the instance has no Modality;
* ``header.sending_application``: the calling AE title (routes test it with
  ``calling_ae:``); ``header.sending_facility``: InstitutionName;
* ``get(tag)``: a DICOM keyword (``Modality``, ``InstitutionName``,
  ``StationName``, ``StudyDescription``, any other) or ``(gggg,eeee)``; the
  value as text, '' when absent (an HL7 path also reads as '').

The spool file is found from the reference itself (``spool_dir`` + ``spool``),
so an instance stays routable when its listener's config changes.

The patient: ordering key = StudyInstanceUID, so that the delivery workers
keep each study's instances in order (an instance without one, which no
conformant modality sends, falls back to its series, then to itself);
identifiers = PatientID, for ``eai messages list --patient``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydicom import Dataset
from pydicom.datadict import keyword_for_tag

from dicom_router._elements import element_text, read_header
from dicom_router.config import parse_tag
from dicom_router.reference import InstanceRef
from eai.config import ListenerConfig, Route
from eai.content import ParsedContent, register_content_type
from eai.errors import InputError
from eai.messages import MEDIA_DICOM_REF
from identity import PatientKey

__all__ = ["DicomHeader", "DicomInstance", "message_type_of", "parse_dicom"]


def message_type_of(modality: str) -> str:
    """``DICOM^CT``, or ``DICOM^C-STORE`` without a Modality."""
    return f"DICOM^{modality}" if modality else "DICOM^C-STORE"


@dataclass(frozen=True, slots=True)
class DicomHeader:
    """The values :class:`eai.routing.RoutableHeader` asks for."""

    message_type: str
    sending_application: str
    sending_facility: str


class DicomInstance:
    """A received instance as routes see it (header read lazily, without pixels)."""

    __slots__ = ("_dataset", "header", "ref")

    def __init__(self, ref: InstanceRef) -> None:
        self.ref = ref
        self._dataset: Dataset | None = None
        self.header = DicomHeader(
            message_type_of(ref.attrs.get("Modality", "")),
            ref.calling_ae,
            ref.attrs.get("InstitutionName", ""),
        )

    def get(self, path: str) -> str:
        """The element named by keyword or ``(gggg,eeee)``; '' when absent or not a tag."""
        try:
            tag = parse_tag(path)
        except ValueError:
            return ""
        keyword = keyword_for_tag(tag)
        if keyword in self.ref.attrs:
            return self.ref.attrs[keyword]
        return element_text(self._read(), tag)

    def _read(self) -> Dataset:
        if self._dataset is None:
            try:
                self._dataset = read_header(self.ref.read())
            except FileNotFoundError:
                raise InputError(f"spool file {self.ref.spool} is gone") from None
            except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds
                raise InputError(f"spool file {self.ref.spool} unreadable: {exc}") from None
        return self._dataset

    def __repr__(self) -> str:
        return f"DicomInstance({self.ref.sop_instance_uid!r})"


def parse_dicom(payload: bytes, listener: ListenerConfig | None) -> ParsedContent:
    ref = InstanceRef.from_json(payload)
    try:
        ref.path  # noqa: B018 - checks the spool name
    except ValueError as exc:
        raise InputError(f"DICOM reference: {exc}") from None
    instance = DicomInstance(ref)
    order = ref.study_instance_uid or ref.series_instance_uid or ref.sop_instance_uid
    patient_id = ref.attrs.get("PatientID", "").strip()
    key = PatientKey(order, (patient_id,) if patient_id else ())
    return ParsedContent(instance, key, control_id=ref.sop_instance_uid, for_route=_marking(ref))


def _marking(ref: InstanceRef) -> Callable[[Route], bytes | None]:
    """A route's delivery payload: the reference with its ``coerce`` ops (None: as received)."""

    def for_route(route: Route) -> bytes | None:
        ops = getattr(route, "coerce", ())  # the route key dicom_router.routing registers
        return ref.with_coercion(ops).to_json() if ops else None

    return for_route


register_content_type("dicom", parse_dicom, MEDIA_DICOM_REF)
