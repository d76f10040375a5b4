"""``collected_texts`` (the reception's fast path) gives what pydicom's ``element_text`` gives."""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file

from dicom_router._elements import collected_texts, element_text, raw_dataset
from dicom_router._framing import RawElement, check_framing

MODALITY, INSTITUTION, SOP_INSTANCE = 0x00080060, 0x00080080, 0x00080018
TAGS = (MODALITY, INSTITUTION, SOP_INSTANCE)


def _explicit(tag: int, vr: bytes, value: bytes) -> bytes:
    return struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr + struct.pack("<H", len(value)) + value


def _implicit(tag: int, value: bytes) -> bytes:
    return struct.pack("<HHL", tag >> 16, tag & 0xFFFF, len(value)) + value


def _both(
    body: bytes, implicit: bool, tags: tuple[int, ...]
) -> tuple[dict[int, str], dict[int, str]]:
    found: dict[int, RawElement] = {}
    check_framing(
        body,
        implicit_vr=implicit,
        little_endian=True,
        collect=frozenset({*tags, 0x00080005}),
        found=found,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about invalid UIs; values still compare
        fast = collected_texts(body, found, tags, implicit, True)
        ds = raw_dataset(body, found, implicit, True)
        slow = {t: element_text(ds, t) for t in tags}
    return fast, slow


_VALUE = st.binary(max_size=24).map(lambda b: b if len(b) % 2 == 0 else b + b" ")
_ASCIIISH = st.text(alphabet=st.sampled_from(list(" \0\t\\.ABCDEZabz0129-_^é")), max_size=23).map(
    lambda s: s.encode("latin-1")
)


@settings(max_examples=300, deadline=None)
@given(
    charset=st.sampled_from([None, b"ISO_IR 100", b"ISO_IR 192", b"ISO_IR 6 ", b"ISO 2022 IR 87"]),
    modality=st.one_of(_ASCIIISH, _VALUE),
    institution=st.one_of(_ASCIIISH, _VALUE),
    uid=st.one_of(_ASCIIISH, st.just(b"1.2.840.10008.1.2\0")),
    implicit=st.booleans(),
)
def test_fast_path_equals_pydicom(
    charset: bytes | None, modality: bytes, institution: bytes, uid: bytes, implicit: bool
) -> None:
    pad = [v if len(v) % 2 == 0 else v + b" " for v in (modality, institution, uid)]
    elements = [
        (MODALITY, b"CS", pad[0]),
        (INSTITUTION, b"LO", pad[1]),
        (SOP_INSTANCE, b"UI", pad[2]),
    ]
    if charset is not None:
        cs = charset if len(charset) % 2 == 0 else charset + b" "
        elements.insert(0, (0x00080005, b"CS", cs))
    if implicit:
        body = b"".join(_implicit(t, v) for t, _, v in elements)
    else:
        body = b"".join(_explicit(t, vr, v) for t, vr, v in elements)
    fast, slow = _both(body, implicit, TAGS)
    assert fast == slow


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm"])
def test_fast_path_equals_pydicom_on_pydicom_files(name: str) -> None:
    path = Path(str(get_testdata_file(name)))
    ds = pydicom.dcmread(path)
    offset = ds.preamble and 128 + 4
    raw = path.read_bytes()
    meta_len = int(ds.file_meta.FileMetaInformationGroupLength)
    body = raw[offset + 12 + meta_len :]
    tags = (0x00080016, SOP_INSTANCE, MODALITY, INSTITUTION, 0x00081010, 0x00081030, 0x00100020)
    fast, slow = _both(body, ds.file_meta.TransferSyntaxUID.is_implicit_VR, tags)
    assert fast == slow and fast[SOP_INSTANCE] == str(ds.SOPInstanceUID)
