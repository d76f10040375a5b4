"""Reads a spooled instance's header and gives element values as routes see them.

Touches: files (reads spool files, never the pixel data).
"""

from __future__ import annotations

from pathlib import Path

from pydicom import Dataset, dcmread
from pydicom.dataelem import DataElement
from pydicom.multival import MultiValue

__all__ = ["element_text", "read_header"]


def read_header(path: Path) -> Dataset:
    """The dataset up to (not including) the pixel data, with its file meta."""
    return dcmread(path, stop_before_pixels=True)


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
