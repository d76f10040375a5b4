"""Property tests: for any bytes the HL7 reader raises InputError or nothing else."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from eai.errors import InputError
from eai.hl7 import (
    Hl7Message,
    build_ack,
    guess_control_id,
    normalise_segment_separators,
    parse,
    read_header,
)
from tests._paths import HL7V2

pytestmark = pytest.mark.fuzz

SMALL_FIXTURES = [p.read_bytes() for p in sorted(HL7V2.iterdir()) if p.stat().st_size < 10_000]
MSH = b"MSH|^~\\&|APP|FAC|RAPP|RFAC|20240306||ADT^A01^ADT_A01|42|P|2.5|||||FRA|UNICODE UTF-8\r"
CHARSETS = [b"", b"UNICODE UTF-8", b"8859/1", b"8859/15", b"ASCII", b"UNICODE UTF-16", b"X"]
# Bytes that matter to the reader: delimiters, line ends, escape letters, bad UTF-8.
SPECIAL = st.sampled_from(
    [
        b"|",
        b"^",
        b"~",
        b"\\",
        b"&",
        b"#",
        b"\r",
        b"\n",
        b"\r\n",
        b"\xc3",
        b"\xa9",
        b"\xff",
        b"\x00",
        b"F",
        b"X",
        b".br",
        b"MSH",
        b"PID",
        b"Z",
        b"2.5",
        b"\\X4",
        b" ",
    ]
)
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _exercise(message: Hl7Message, draw_paths: list[str]) -> None:
    """Use the whole lazy API; nothing in it may raise for a message parse accepted."""
    assert isinstance(message.text, str)
    for segment in message.segments():
        assert segment.name == segment.text[:3]
        for number in range(len(segment.fields) + 2):
            for rep, comp, sub in ((1, 0, 0), (2, 1, 0), (1, 2, 2), (0, 0, 0)):
                assert isinstance(segment.get(number, rep, comp, sub), str)
            assert isinstance(segment.get_all(number, 1), list)
    for path in draw_paths:
        assert isinstance(message.get(path), str)
        assert isinstance(message.get_all(path), list)


def _check(data: bytes, paths: list[str]) -> None:
    assert isinstance(guess_control_id(data), str)
    normalise_segment_separators(data)
    try:
        header = read_header(data)
    except InputError as exc:
        event(f"refused {exc.hl7_code}")
        assert exc.reason and exc.hl7_code
        with pytest.raises(InputError):
            parse(data)
        build_ack(None, "AR", control_id="1", error=exc, fallback_control_id=guess_control_id(data))
        return
    event("accepted")
    message = parse(data)
    assert message.header == header
    assert message.raw is data or message.raw == data
    _exercise(message, paths)
    # An ACK of any accepted message is itself a message we accept, answering its control id.
    ack = parse(build_ack(header, "AA", control_id="ACK1"))
    assert ack.get("MSA-2") == header.control_id


paths = st.lists(
    st.builds(
        "{}{}-{}{}{}".format,
        st.sampled_from(["MSH", "PID", "PV1", "ZBE", "OBX", "EVN", "ZZZ"]),
        st.sampled_from(["", "[1]", "[2]", "[40]"]),
        st.integers(1, 40),
        st.sampled_from(["", "[1]", "[2]", "[9]"]),
        st.sampled_from(["", ".1", ".2", ".4.2", ".1.1", ".9.9"]),
    ),
    max_size=8,
)


@SETTINGS
@given(data=st.binary(max_size=400), paths=paths)
def test_arbitrary_bytes(data: bytes, paths: list[str]) -> None:
    _check(data, paths)


@SETTINGS
@given(
    charset=st.sampled_from(CHARSETS),
    body=st.lists(st.one_of(SPECIAL, st.binary(max_size=12)), max_size=40),
    paths=paths,
)
def test_bytes_after_a_valid_msh(charset: bytes, body: list[bytes], paths: list[str]) -> None:
    _check(MSH.replace(b"UNICODE UTF-8", charset) + b"".join(body), paths)


@st.composite
def mutated_fixture(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SMALL_FIXTURES)))
    for _ in range(draw(st.integers(1, 8))):
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(["insert", "delete", "replace", "truncate"]))
        if kind == "insert":
            data[pos:pos] = draw(st.one_of(SPECIAL, st.binary(min_size=1, max_size=6)))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 20))]
        elif kind == "replace":
            data[pos] = draw(st.integers(0, 255))
        else:
            del data[pos:]
    return bytes(data)


@SETTINGS
@given(data=mutated_fixture(), paths=paths)
def test_mutated_fixtures(data: bytes, paths: list[str]) -> None:
    _check(data, paths)
