"""The SCP's printable form of received identifiers (logs, retention tags, journal)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dicom_router.scp import _printable


def _reference(value: str) -> str:
    return "".join(c if 0x20 < ord(c) < 0x7F else "?" for c in value)[:64]


@given(st.text(max_size=100) | st.from_regex(r"[0-9.]{0,80}", fullmatch=True))
def test_printable_replaces_everything_outside_printable_ascii(value: str) -> None:
    assert _printable(value) == _reference(value)


def test_printable_examples() -> None:
    assert _printable("1.2.840.10008.5.1.4.1.1.2") == "1.2.840.10008.5.1.4.1.1.2"
    assert _printable("1.2 3\x00../é") == "1.2?3?../?"
    assert _printable("9" * 70) == "9" * 64
