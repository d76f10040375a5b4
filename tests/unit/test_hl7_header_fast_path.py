"""``read_message``'s fast paths give exactly what its general path gives.

A differential test. Two shortcuts serve nearly every message: the standard delimiters
(``MSH|^~\\&|``) are not checked again, and an MSH whose fields after MSH-2 hold no
repetition, escape or subcomponent separator is read with a split per field
(``_plain_values``) instead of the general reader (``_values``: repetitions, components,
subcomponents, escapes). Each input is read twice, once with ``_plain_values`` turned
off: the same header, text and spans, or the same ``InputError``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eai.errors import InputError
from eai.hl7 import _header
from eai.hl7._element import Delimiters
from tests._paths import HL7V2

FIXTURES = [p.read_bytes() for p in sorted(HL7V2.iterdir())]


@contextmanager
def _general_path_only() -> Iterator[None]:
    fast = _header._plain_values
    _header._plain_values = lambda *args: None  # type: ignore[assignment]
    try:
        yield
    finally:
        _header._plain_values = fast


def _read(data: bytes) -> Any:
    try:
        return _header.read_message(data, "UNICODE UTF-8")
    except InputError as exc:
        return ("InputError", exc.reason, exc.hl7_code, exc.location)


def _assert_same(data: bytes) -> None:
    fast = _read(data)
    with _general_path_only():
        general = _read(data)
    assert fast == general


@pytest.mark.parametrize("data", FIXTURES, ids=[p.name for p in sorted(HL7V2.iterdir())])
def test_every_fixture_reads_the_same(data: bytes) -> None:
    _assert_same(data)


@pytest.mark.parametrize(
    "msh",
    [
        b"MSH|^~\\&|APP|FAC|RAPP|RFAC|20240306||ADT^A01^ADT_A01|42|P|2.5",
        b"MSH|^~\\&|APP^1.2.3^ISO|FAC|||20240306||ADT^A01|42^x|P^T|2.5^FRA|||AL|NE",
        b"MSH|^~\\&|A|B|C|D|20240101||ACK|7|P|2.5|||AL|NE",
        b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01",  # no control id: the same refusal
        b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|",  # no version
        b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|3.0",  # unsupported version
        b"MSH|^~\\&|A\\T\\B|F|C|D|20240101||ADT^A01|1|P|2.5",  # an escape: general path
        b"MSH|^~\\&|A~B|F|C|D|20240101||ADT^A01|1|P|2.5",  # a repetition: general path
        b"MSH|^~\\&|A&B^C|F|C|D|20240101||ADT^A01|1|P|2.5",  # a subcomponent
        b"MSH|^~\\&#|A|B|C|D|20240101||ADT^A01|1|P|2.7",  # truncation character
        b"MSH#*@/%#APP*X#FAC###20240101##ADT*A08*ADT_A01#99#P#2.3.1",
        b"MSH|^~\\&|",
        b"MSH|^~\\&",
        b"MSH|^~\\&||||||||||||||||||||",
    ],
)
def test_headers_read_the_same(msh: bytes) -> None:
    _assert_same(msh + b"\rPID|1\r")
    _assert_same(msh)


def test_standard_delimiters_are_those_the_check_would_give() -> None:
    assert _header._delimiters(b"MSH|^~\\&|") == Delimiters.of("|", "^~\\&")
    assert _header._delimiters(b"MSH|^~\\&|A|B") == Delimiters("|", "^", "~", "\\", "&", "^~\\&")


_PARTS = st.sampled_from(
    ["", "A", "ADT", "A01", "ADT_A01", "42", "2.5", "2.3.1", "P", "AL", "UNICODE UTF-8", " "]
)
_SEPARATORS = st.sampled_from(["^", "~", "\\", "&", "#", "\\T\\", "\\F\\", "\\X41\\", "é"])
_FIELD = st.lists(st.one_of(_PARTS, _SEPARATORS), max_size=5).map("".join)


@given(
    fields=st.lists(_FIELD, min_size=0, max_size=20),
    encoding=st.sampled_from(["^~\\&", "^~\\&#", "*@/%"]),
    field_sep=st.sampled_from(["|", "#", "!"]),
)
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_header_reads_the_same(fields: list[str], encoding: str, field_sep: str) -> None:
    msh = field_sep.join(["MSH" + field_sep + encoding, *fields])
    _assert_same(msh.encode("utf-8") + b"\rPID|1\r")
