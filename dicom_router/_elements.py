"""Reads an instance's header (up to the pixel data) and gives element values as routes see them.

Touches: nothing (decodes bytes in memory).
"""

from __future__ import annotations

import re
from io import BytesIO

from pydicom import Dataset, dcmread
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.multival import MultiValue
from pydicom.tag import Tag

from dicom_router._framing import RawElement

__all__ = ["collected_texts", "element_text", "raw_dataset", "read_header"]

_TEXT_VRS = frozenset({b"", b"AE", b"CS", b"LO", b"SH", b"UI"})
"""VRs whose plain-ASCII single value :func:`collected_texts` decodes itself (b"": implicit
VR, the dictionary's, which for the collected tags is one of these)."""
_ASCII_CHARSETS = frozenset({b"", b"ISO_IR 6", b"ISO_IR 100", b"ISO_IR 192"})
"""Specific Character Sets under which ASCII bytes are the ASCII characters (no escapes)."""


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


def collected_texts(
    body: bytes | memoryview,
    found: dict[int, RawElement],
    tags: tuple[int, ...],
    implicit_vr: bool,
    little_endian: bool,
) -> dict[int, str]:
    """:func:`element_text` of each of ``tags`` among the elements located by
    :func:`dicom_router._framing.check_framing`, without pydicom for the usual case.

    A single value (no backslash) of a text VR whose bytes are printable ASCII, under
    no or an ASCII-preserving Specific Character Set, is decoded here; anything else
    (multiple values, other bytes, escapes, other VRs) by pydicom, as before. Same
    result either way (``tests/unit/test_dicom_elements.py`` checks it).
    """
    view = memoryview(body)
    charset = found.get(0x00080005)
    plain = charset is None or (
        bytes(view[charset[1] : charset[1] + charset[2]]).strip(b" \0") in _ASCII_CHARSETS
    )
    out: dict[int, str] = {}
    slow: list[int] = []
    for tag in tags:
        located = found.get(tag)
        if located is None:
            out[tag] = ""
            continue
        vr, offset, length = located
        value = bytes(view[offset : offset + length]).rstrip(b" \0")
        if plain and vr in _TEXT_VRS and _PRINTABLE.fullmatch(value):
            out[tag] = value.decode("ascii").strip()
        else:
            slow.append(tag)
    if slow:
        subset = {t: found[t] for t in (*slow, 0x00080005) if t in found}
        ds = raw_dataset(body, subset, implicit_vr, little_endian)
        out.update((t, element_text(ds, t)) for t in slow)
    return out


_PRINTABLE = re.compile(rb"[\x20-\x5b\x5d-\x7e]*")
"""Printable ASCII without the backslash (the value separator)."""
