"""Checks a received C-STORE data set: framing, SOP UIDs against the request, routing attributes.

Touches: nothing (reads the bytes it is given).
"""

from __future__ import annotations

from pathlib import Path

from pydicom.uid import UID

from dicom_router._dimse import Command
from dicom_router._elements import collected_texts
from dicom_router._framing import DatasetFramingError, RawElement, check_framing, inflate
from dicom_router.config import is_uid
from dicom_router.reference import ROUTING_KEYWORDS, InstanceRef
from dicom_router.spool import SpooledFile

__all__ = [
    "STATUS_CANNOT_UNDERSTAND",
    "STATUS_DOES_NOT_MATCH_SOP_CLASS",
    "STATUS_INVALID_UID",
    "STATUS_OUT_OF_RESOURCES",
    "STATUS_SUCCESS",
    "STATUS_UID_MISMATCH",
    "Rejected",
    "check_instance",
    "printable",
]

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


class Rejected(Exception):
    """The instance is refused after it was spooled (quarantine, journal ``rejected``)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def check_instance(
    spool_root: Path,
    spooled: SpooledFile,
    dataset: memoryview,
    ts: UID,
    command: Command,
    calling: str,
    peer: str,
) -> InstanceRef:
    """Checks a spooled instance; raises :class:`Rejected` with a status when refused."""
    affected_class = command.affected_sop_class_uid
    affected_instance = command.affected_sop_instance_uid
    if not is_uid(affected_instance) or not is_uid(affected_class):
        raise Rejected(STATUS_INVALID_UID, "the C-STORE request's SOP UIDs are not UIDs")
    found: dict[int, RawElement] = {}
    implicit, little = bool(ts.is_implicit_VR), bool(ts.is_little_endian)
    try:
        body = inflate(dataset) if ts.is_deflated else dataset
        check_framing(
            body, implicit_vr=implicit, little_endian=little, collect=_COLLECT, found=found
        )
    except DatasetFramingError as exc:
        raise Rejected(STATUS_CANNOT_UNDERSTAND, f"dataset cannot be decoded: {exc}") from None
    try:
        texts = collected_texts(body, found, _TEXT_TAGS, implicit, little)
        sop_class = texts[0x00080016]
        sop_instance = texts[0x00080018]
        attrs = {kw: texts[_TAGS[kw]] for kw in ROUTING_KEYWORDS}
        study = texts[0x0020000D]
        series = texts[0x0020000E]
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds on bad input
        raise Rejected(
            STATUS_CANNOT_UNDERSTAND, f"dataset cannot be decoded: {type(exc).__name__}: {exc}"
        ) from None
    if sop_class != affected_class:
        raise Rejected(
            STATUS_DOES_NOT_MATCH_SOP_CLASS,
            f"dataset SOP Class UID {sop_class[:64]!r} is not the announced {affected_class}",
        )
    if not is_uid(sop_instance):
        raise Rejected(STATUS_INVALID_UID, "the dataset's SOP Instance UID is not a UID")
    if sop_instance != affected_instance:
        raise Rejected(
            STATUS_UID_MISMATCH,
            # no UID here: the reason is kept in clear beside the sealed file
            "the dataset's SOP Instance UID is not the one the C-STORE request announced",
        )
    for name, value in (("Study", study), ("Series", series)):
        if value and not is_uid(value):
            raise Rejected(STATUS_INVALID_UID, f"the dataset's {name} Instance UID is not a UID")
    return InstanceRef(
        spool_dir=str(spool_root),
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


def printable(value: str) -> str:
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
