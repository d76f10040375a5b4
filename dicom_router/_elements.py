"""Reads an instance's header (up to the pixel data) and gives element values as routes see them.

Touches: nothing (decodes bytes in memory).
"""

from __future__ import annotations

from io import BytesIO

from pydicom import Dataset, dcmread
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.multival import MultiValue
from pydicom.tag import Tag

from dicom_router._framing import RawElement

__all__ = ["element_text", "raw_dataset", "read_header"]


def read_header(part10: bytes) -> Dataset:
    """A Part-10 instance's dataset up to (not including) the pixel data, with its file meta."""
    return dcmread(BytesIO(part10), stop_before_pixels=True)


def raw_dataset(
    body: bytes | memoryview, found: dict[int, RawElement], implicit_vr: bool, little_endian: bool
) -> Dataset:
    """A dataset of the top-level elements located in ``body`` by
    :func:`dicom_router._framing.check_framing` (``collect``), decoded only when read."""
    view = memoryview(body)
    ds = Dataset()
    for tag, (vr, offset, length) in sorted(found.items()):
        ds[tag] = RawDataElement(
            Tag(tag),
            vr.decode("ascii") if vr else None,
            length,
            bytes(view[offset : offset + length]),
            offset,
            implicit_vr,
            little_endian,
        )
    ds.set_original_encoding(implicit_vr, little_endian)
    return ds


def element_text(ds: Dataset, tag: int) -> str:
    """The value of ``tag`` as text: '' when absent or empty, binary, or a sequence;
    several values joined with a backslash (their encoded form, PS3.5 6.4)."""
    if tag not in ds:
        return ""
    elem: DataElement = ds[tag]
    if elem.VR in ("SQ", "OB", "OW", "OD", "OF", "OL", "OV", "UN") or elem.value is None:
        return ""
    value = elem.value
    if isinstance(value, bytes):
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v) for v in value)
    return str(value).strip()
