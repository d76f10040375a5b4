"""Property tests: the ordering key read at ingest never raises, whatever the bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eai.order_key import order_key, ordering_id
from tests._paths import HL7V2

pytestmark = pytest.mark.fuzz

SMALL_FIXTURES = [p.read_bytes() for p in sorted(HL7V2.iterdir()) if p.stat().st_size < 10_000]
PIECES = st.sampled_from(
    [b"MSH|^~\\&|", b"\rPID|", b"\nPID|", b"\rMRG|", b"|", b"^", b"~", b"&", b"\\", b"\r"]
    + [b"\n", b"INS", b"1.2.250.1.213.1.4.10", b"\x00", b"\xff", b"\xc3", b"000003", b"PI"]
)


def _check(payload: bytes) -> None:
    found = ordering_id(payload)
    assert isinstance(found, str)
    assert order_key(payload, lambda s: "h" * 40) in ("", "h" * 40)


@given(st.binary(max_size=400))
def test_arbitrary_bytes(payload: bytes) -> None:
    _check(payload)
    _check(b"MSH" + payload)


@given(st.lists(st.one_of(PIECES, st.binary(max_size=8)), max_size=40))
def test_hl7_like_pieces(pieces: list[bytes]) -> None:
    _check(b"MSH|^~\\&|" + b"".join(pieces))
    _check(b"".join(pieces))


@given(st.sampled_from(SMALL_FIXTURES), st.integers(0, 2000), st.binary(max_size=6))
def test_mutated_fixtures(fixture: bytes, at: int, junk: bytes) -> None:
    at %= len(fixture) + 1
    _check(fixture[:at] + junk + fixture[at:])
    _check(fixture[:at])
