"""read_header and guess_control_id: fixture headers and every InputError case."""

from __future__ import annotations

from pathlib import Path

import pytest

from eai.errors import InputError
from eai.hl7 import MessageHeader, codec_for_charset, guess_control_id, read_header
from tests._paths import HL7V2

A01 = (HL7V2 / "pamfr_a01_admission.er7").read_bytes()
MSH = b"MSH|^~\\&|APP|FAC|RAPP|RFAC|20240306111154||ADT^A01^ADT_A01|42|P|2.5"


def test_a01_header() -> None:
    h = read_header(A01)
    assert isinstance(h, MessageHeader)
    assert (h.field_sep, h.encoding_chars) == ("|", "^~\\&")
    assert (h.sending_application, h.sending_facility) == ("GAM", "CHU-X")
    assert (h.receiving_application, h.receiving_facility) == ("DPI", "CHU-X")
    assert (h.message_type, h.message_structure) == ("ADT^A01", "ADT_A01")
    assert (h.control_id, h.processing_id, h.version) == ("3975", "D", "2.5")
    assert (h.charset, h.codec) == ("UNICODE UTF-8", "utf-8")
    assert not h.enhanced_mode


@pytest.mark.parametrize("path", sorted(HL7V2.iterdir()), ids=lambda p: p.name)
def test_every_fixture_has_a_header(path: Path) -> None:
    h = read_header(path.read_bytes())
    assert h.control_id and h.message_type and h.version.startswith("2.")


def test_header_without_trigger_and_enhanced_mode() -> None:
    h = read_header(b"MSH|^~\\&|A|B|C|D|20240101||ACK|7|P|2.5|||AL|NE\rMSA|AA|6\r")
    assert h.message_type == "ACK" and h.message_structure == ""
    assert h.enhanced_mode and (h.accept_ack_type, h.application_ack_type) == ("AL", "NE")
    assert (h.charset, h.codec) == ("", "utf-8")


def test_header_values_are_unescaped() -> None:
    h = read_header(b"MSH|^~\\&|A\\T\\B^x|F\\S\\G|C|D|20240101||ADT^A01|1\\F\\2|P|2.5\r")
    assert h.sending_application == "A&B"
    assert h.sending_facility == "F^G"
    assert h.control_id == "1|2"


def test_other_separators() -> None:
    h = read_header(b"MSH#*@/%#APP/X#FAC%Y###20240101##ADT*A08#99#P#2.3.1\rPID#1\r")
    assert (h.field_sep, h.encoding_chars) == ("#", "*@/%")
    assert (h.sending_application, h.sending_facility) == ("APP/X", "FAC")
    assert (h.message_type, h.control_id, h.version) == ("ADT^A08", "99", "2.3.1")


def test_truncation_character_allowed() -> None:
    h = read_header(b"MSH|^~\\&#|A|B|C|D|20240101||ADT^A01|1|P|2.7\r")
    assert h.encoding_chars == "^~\\&#"


@pytest.mark.parametrize(
    ("data", "code", "location", "words"),
    [
        (b"", "100", "MSH", "empty"),
        (b"PID|1\r", "100", "MSH", "MSH"),
        (b"\rMSH|^~\\&|", "100", "MSH", "MSH"),
        (b"MSH", "102", "MSH-1", "MSH-1"),
        (b"MSHA^~\\&|", "102", "MSH-1", "MSH-1"),
        (b"MSH ^~\\&|", "102", "MSH-1", "MSH-1"),
        (b"MSH||A|B", "101", "MSH-2", "MSH-2"),
        (b"MSH|^~\\|A", "102", "MSH-2", "4 encoding"),
        (b"MSH|^~\\&#!|A", "102", "MSH-2", "4 encoding"),
        (b"MSH|^~\\A|A", "102", "MSH-2", "non-alphanumeric"),
        (b"MSH|^~^&|A", "102", "MSH-2", "differ"),
        (b"MSH|^~|&|A", "102", "MSH-2", "4 encoding"),
        (b"MSH|^~\\&|A|B|C|D|2024||", "101", "MSH-9", "MSH-9"),
        (b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|", "101", "MSH-10", "MSH-10"),
        (b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P", "101", "MSH-12", "MSH-12"),
        (b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|3.0", "203", "MSH-12", "version"),
        (b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5|||||FR|KOI8", "103", "MSH-18", "unknown"),
        (b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5|||||FR|\xc3\xa9", "103", "MSH-18", "ASCII"),
        (MSH + b"\rpid|1\r", "100", "", "line 2"),
        (MSH + b"\rPID1|1\r", "100", "", "line 2"),
        (MSH + b"\r\n  \rPI|1\r", "100", "", "line 3"),
        (MSH + b"\rPID|\xff\r", "102", "", f"0xff at offset {len(MSH) + 5}"),
    ],
)
def test_input_errors(data: bytes, code: str, location: str, words: str) -> None:
    with pytest.raises(InputError) as info:
        read_header(data)
    assert info.value.hl7_code == code
    assert info.value.location == location
    assert words in info.value.reason


def test_undecodable_under_declared_charset() -> None:
    latin = MSH + b"|||||FRA|ASCII\rPID|1||||Ren\xe9\r"
    with pytest.raises(InputError, match="not valid ascii"):
        read_header(latin)


def test_reason_never_quotes_segment_content() -> None:
    with pytest.raises(InputError) as info:
        read_header(MSH + b"\rdupont|jean\r")
    assert "dupont" not in info.value.reason


def test_codec_for_charset() -> None:
    assert codec_for_charset("UNICODE UTF-8") == "utf-8"
    assert codec_for_charset("8859/1") == "latin-1"
    assert codec_for_charset("8859/15") == "iso8859-15"
    assert codec_for_charset("ASCII") == "ascii"
    assert codec_for_charset("", "8859/1") == "latin-1"
    for bad in ("UNICODE UTF-16", "EBCDIC"):
        with pytest.raises(InputError) as info:
            codec_for_charset(bad)
        assert info.value.hl7_code == "103"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (A01, "3975"),
        (b"\x0bMSH|^~\\&|A|B|C|D|2024||ADT^A01|ABC-1|P|9.9\r\x1c\r", "ABC-1"),
        (b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|  77  \rPID|\xff", "77"),
        (b"garbage", ""),
        (b"", ""),
        (b"MSH", ""),
        (b"MSHA|||||||||1", ""),
        (b"MSH|^~\\&|A|B|C|D|2024||ADT^A01", ""),
        (b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|\x01\x02|", ""),
    ],
)
def test_guess_control_id(data: bytes, expected: str) -> None:
    assert guess_control_id(data) == expected
