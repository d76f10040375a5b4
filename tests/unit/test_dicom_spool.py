"""The DICOM spool's framing check of received datasets (the spool on disk: tests/integration)."""

from __future__ import annotations

import pydicom
import pytest
from pydicom.data import get_testdata_file

from dicom_router._elements import element_text, raw_dataset
from dicom_router._framing import DatasetFramingError, RawElement, check_framing, inflate
from standins.dicom import dataset_bytes

# -- framing --------------------------------------------------------------------------


def _body(name: str) -> bytes:
    path = get_testdata_file(name)
    assert path is not None
    return dataset_bytes(path)


@pytest.mark.parametrize(
    ("name", "implicit", "little"),
    [
        ("CT_small.dcm", False, True),
        ("MR_small_implicit.dcm", True, True),
        ("MR_small_bigendian.dcm", False, False),
        ("JPEG2000.dcm", False, True),  # encapsulated pixel data
        ("reportsi.dcm", False, True),  # undefined-length sequences
    ],
)
def test_framing_accepts_whole_datasets_and_refuses_cuts(
    name: str, implicit: bool, little: bool
) -> None:
    body = _body(name)
    assert check_framing(body, implicit_vr=implicit, little_endian=little) > 5
    for cut in (len(body) - 1, len(body) - 3, len(body) // 2 + 1):
        with pytest.raises(DatasetFramingError):
            check_framing(body[:cut], implicit_vr=implicit, little_endian=little)


@pytest.mark.parametrize(
    ("name", "implicit", "little"),
    [
        ("CT_small.dcm", False, True),
        ("MR_small_implicit.dcm", True, True),
        ("MR_small_bigendian.dcm", False, False),
        ("reportsi.dcm", False, True),
    ],
)
def test_framing_collects_the_routing_elements_as_pydicom_reads_them(
    name: str, implicit: bool, little: bool
) -> None:
    body = _body(name)
    path = get_testdata_file(name)
    assert path is not None
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    tags = {0x00080016, 0x00080018, 0x00080060, 0x00100020, 0x0020000D, 0x00081030}
    found: dict[int, RawElement] = {}
    check_framing(
        body, implicit_vr=implicit, little_endian=little, collect=frozenset(tags), found=found
    )
    header = raw_dataset(body, found, implicit, little)
    assert set(found) == {t for t in tags if t in ds}
    for tag in tags:
        assert element_text(header, tag) == element_text(ds, tag), hex(tag)


def test_framing_refuses_pydicoms_truncated_files() -> None:
    for name, implicit in (("MR_truncated.dcm", False), ("rtplan_truncated.dcm", True)):
        with pytest.raises(DatasetFramingError, match="truncated"):
            check_framing(_body(name), implicit_vr=implicit, little_endian=True)


def test_framing_refuses_garbage_and_bombs() -> None:
    with pytest.raises(DatasetFramingError, match="explicit VR"):
        check_framing(
            b"\x08\x00\x16\x00\x00\x00\x04\x00abcd", implicit_vr=False, little_endian=True
        )
    with pytest.raises(DatasetFramingError):
        inflate(b"not deflate data")
    import zlib

    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    bomb = c.compress(b"\0" * 5_000_000) + c.flush()
    with pytest.raises(DatasetFramingError, match="more than"):
        inflate(bomb, limit=1_000_000)
