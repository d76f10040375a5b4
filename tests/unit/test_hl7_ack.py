"""build_ack: layout, escaping, charsets, and every ACK parses with hl7apy."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hl7apy.parser import parse_message

from eai.errors import InputError
from eai.hl7 import build_ack, parse, read_header
from tests._paths import HL7V2

FIXTURES = sorted(HL7V2.iterdir())
A01 = (HL7V2 / "pamfr_a01_admission.er7").read_bytes()
NOW = datetime(2024, 3, 6, 11, 12, 13)
ERROR = InputError("MSH-9 message type is missing", "101", "MSH-9")


def _hl7apy(ack: bytes, codec: str = "utf-8") -> Any:
    return parse_message(ack.decode(codec), find_groups=False)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
@pytest.mark.parametrize(("code", "error"), [("AA", None), ("CA", None), ("AR", ERROR)])
def test_every_ack_parses_with_hl7apy(path: Path, code: str, error: InputError | None) -> None:
    header = read_header(path.read_bytes())
    ack = build_ack(header, code, control_id="ACK-1", text="ok", error=error)
    msg = _hl7apy(ack, header.codec)
    assert msg.msa.msa_1.value == code
    assert msg.msa.msa_2.value == header.control_id
    assert msg.msh.msh_10.value == "ACK-1"
    assert msg.msh.msh_12.value == header.version
    if error is None:
        assert not [s for s in msg.children if s.name == "ERR"]
    else:
        assert msg.err.err_3.value == "101^Required field missing^HL70357"
        assert msg.err.err_4.value == "E"
        assert msg.err.err_8.value == "MSH-9 message type is missing"


def test_ack_layout() -> None:
    ack = build_ack(read_header(A01), "AA", control_id="ACK-1", now=NOW)
    assert ack == (
        b"MSH|^~\\&|DPI|CHU-X|GAM|CHU-X|20240306111213||ACK^A01^ACK|ACK-1|D|2.5"
        b"||||||UNICODE UTF-8\rMSA|AA|3975\r"
    )


def test_ack_with_error_and_text() -> None:
    error = InputError("bad value | in\r\nPID-3.4", "102", "PID[2]-3[2].4.1")
    ack = build_ack(read_header(A01), "AE", control_id="9", text="a^b", error=error, now=NOW)
    segments = ack.decode().split("\r")
    assert segments[1] == "MSA|AE|3975|a\\S\\b"
    assert segments[2] == (
        "ERR||PID^2^3^2^4^1|102^Data type error^HL70357|E||||bad value \\F\\ in\\.br\\PID-3.4"
    )
    assert segments[3] == ""


def test_ack_without_header_uses_fallbacks() -> None:
    ack = build_ack(None, "AR", control_id="A2", error=ERROR, fallback_control_id="77", now=NOW)
    assert ack.startswith(b"MSH|^~\\&|||||20240306111213||ACK|A2|P|2.5\rMSA|AR|77\rERR|")
    msg = _hl7apy(ack)
    assert (msg.msa.msa_1.value, msg.msa.msa_2.value) == ("AR", "77")


def test_unknown_error_code_is_sent_as_207_and_location_may_be_free_text() -> None:
    ack = build_ack(None, "AE", control_id="1", error=InputError("boom", "999", "somewhere"))
    assert b"\rERR|||207^Application internal error^HL70357|E||||boom\r" in ack


def test_no_trigger_gives_plain_ack_type() -> None:
    header = read_header(b"MSH|^~\\&|A|B|C|D|2024||ACK|5|T|2.4\rMSA|AA|4\r")
    ack = build_ack(header, "CA", control_id="6", now=NOW)
    assert ack == b"MSH|^~\\&|C|D|A|B|20240306111213||ACK|6|T|2.4\rMSA|CA|5\r"


def test_ack_keeps_message_separators_and_codec() -> None:
    data = "MSH#*@/%#A/S/p@x#Fé###2024##ADT*A01#1#P#2.5######8859/1\rPID#1\r".encode("latin-1")
    header = read_header(data)
    assert (header.sending_application, header.sending_facility) == ("A*p", "Fé")
    ack = build_ack(header, "AA", control_id="é*", text="Noël", now=NOW)
    text = ack.decode("latin-1")
    assert text.startswith("MSH#*@/%###A/S/p#Fé#20240306111213##")
    assert "#ACK*A01*ACK#é/S/#P#2.5######8859/1\r" in text
    assert text.endswith("MSA#AA#1#Noël\r")


def test_ascii_ack_replaces_what_it_cannot_encode() -> None:
    header = read_header(b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5|||||FR|ASCII\r")
    ack = build_ack(header, "AE", control_id="1", text="Noël")
    assert ack.endswith(b"MSA|AE|1|No?l\r")


def test_ack_carries_no_patient_data() -> None:
    message = parse(A01)
    ack = build_ack(message.header, "AR", control_id="1", error=ERROR)
    for path in ("PID-5.1", "PID-5.2", "PID-3[2].1", "PID-7", "PID-11.3"):
        assert message.get(path).encode() not in ack


@pytest.mark.parametrize("code", ["", "OK", "aa", "AX"])
def test_bad_ack_code(code: str) -> None:
    with pytest.raises(ValueError, match="acknowledgement code"):
        build_ack(None, code, control_id="1")


def test_the_time_of_an_ack_is_now_to_the_second() -> None:
    from eai.hl7._ack import _now_stamp

    for _ in range(3):  # a second may turn between the two readings
        before = datetime.now().strftime("%Y%m%d%H%M%S")
        stamp = _now_stamp()
        if before == datetime.now().strftime("%Y%m%d%H%M%S"):
            assert stamp == before
            return
    raise AssertionError("the clock turned a second three times in a row")


def test_acks_of_two_interfaces_never_share_a_header() -> None:
    """The MSH parts of an ACK are cached per interface: each gets its own."""
    one = read_header(b"MSH|^~\\&|GAM|CHU-X|DPI|CHU-X|20240101||ADT^A01|1|P|2.5\r")
    other = read_header(b"MSH|^~\\&|GAM|CHU-Y|DPI|CHU-X|20240101||ADT^A08|2|T|2.5\r")
    a = build_ack(one, "AA", control_id="E1").split(b"\r")[0].split(b"|")
    b = build_ack(other, "AA", control_id="E2").split(b"\r")[0].split(b"|")
    assert (a[4], a[5], a[8], a[9], a[10]) == (b"GAM", b"CHU-X", b"ACK^A01^ACK", b"E1", b"P")
    assert (b[4], b[5], b[8], b[9], b[10]) == (b"GAM", b"CHU-Y", b"ACK^A08^ACK", b"E2", b"T")
