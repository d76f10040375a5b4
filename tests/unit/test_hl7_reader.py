"""parse and Hl7Message: every segment kept, paths, laziness, separators, charsets."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hl7apy.parser import parse_message

from eai.errors import InputError
from eai.hl7 import Hl7Message, Segment, normalise_segment_separators, parse, validate_path
from tests._paths import HL7V2

FIXTURES = sorted(HL7V2.iterdir())
A01 = (HL7V2 / "pamfr_a01_admission.er7").read_bytes()
CONSENT = (HL7V2 / "pamfr_a01_consent_dmp.er7").read_bytes()


def _lines(data: bytes) -> list[bytes]:
    return [line for line in data.splitlines() if line.strip()]


def _hl7apy_segment_names(data: bytes, find_groups: bool) -> list[str]:
    def walk(element: Any) -> list[str]:
        names: list[str] = []
        for child in element.children:
            names += [child.name] if child.classname == "Segment" else walk(child)
        return names

    text = normalise_segment_separators(data).decode("utf-8")
    return walk(parse_message(text, find_groups=find_groups))


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_every_segment_is_kept(path: Path) -> None:
    data = path.read_bytes()
    message = parse(data)
    names = [s.name for s in message.segments()]
    assert len(names) == len(_lines(data))
    assert names == [line[:3].decode() for line in _lines(data)]
    assert message.raw is data


@pytest.mark.parametrize(
    "name", ["pamfr_a01_admission.er7", "pamfr_a01_consent_dmp.er7", "pamfr_a03_sortie.er7"]
)
def test_hl7apy_default_mode_drops_z_segments_we_keep(name: str) -> None:
    data = (HL7V2 / name).read_bytes()
    ours = [s.name for s in parse(data).segments()]
    theirs = _hl7apy_segment_names(data, find_groups=True)
    z_segments = [n for n in ours if n.startswith("Z")]
    assert z_segments, "the PAM FR fixtures carry ZBE/ZFA..."
    assert len(theirs) == len(ours) - len(z_segments)
    assert not [n for n in theirs if n.startswith("Z")]
    # without group finding hl7apy keeps them too, in the same order as we do
    assert _hl7apy_segment_names(data, find_groups=False) == ours


def test_hl7apy_default_mode_never_has_more_segments() -> None:
    for path in FIXTURES:
        data = path.read_bytes()
        ours = Counter(s.name for s in parse(data).segments())
        assert Counter(_hl7apy_segment_names(data, find_groups=True)) <= ours, path.name


def test_consent_z_segments_and_trailing_blank_lines() -> None:
    message = parse(CONSENT)
    names = [s.name for s in message.segments()]
    assert names[-4:] == ["ZBE", "ZFA", "ZFM", "ZFD"]
    assert message.get("ZFD-3") == "Y"
    assert message.get("ZFM-1") == "8"
    assert message.text.endswith("ZFD|||Y|N|INSI|20211201||\r")


def test_a01_paths() -> None:
    m = parse(A01)
    assert m.get("PID-3[2].1") == "279035121518989"
    assert m.get("PID-3[2].4.2") == "1.2.250.1.213.1.4.10"
    assert m.get("PV1-2") == "I"
    assert m.get("ZBE-4") == "INSERT"
    assert m.get("MSH-1") == "|"
    assert m.get("MSH-2") == "^~\\&"
    assert m.get("MSH-3") == "GAM"
    assert m.get("MSH-9.1") == "ADT"
    assert m.get("MSH-9.2") == "A01"
    assert m.get("MSH-10") == "3975"
    assert m.get("MSH-12") == "2.5^FRA^2.11"
    assert m.get("MSH-12.3") == "2.11"
    assert m.get("PID-3") == "000003^^^CHU-X&000897406&N^PI"
    assert m.get("PID-3[1].4") == "CHU-X&000897406&N"
    assert m.get("PID-3.4.1") == "CHU-X"
    assert m.get("PID-8") == "F"
    assert m.get("PID-8.1.1") == "F"


def test_absent_values_are_empty() -> None:
    m = parse(A01)
    for path in ("PID-99", "PID-3[3]", "PID-3.99", "PID-3.4.9", "OBX-5", "PID[2]-3", "MSH-2.2"):
        assert m.get(path) == "", path
    for path in ("PID-99", "PID-3[3]", "OBX-5", "PID[2]-3", "PID-2"):
        assert m.get_all(path) == [], path
    assert m.get_all("PID-3.99") == ["", ""]  # one value per repetition, even empty
    assert m.get("PID-2") == ""  # present but empty


def test_get_all() -> None:
    m = parse(A01)
    assert m.get_all("PID-3.1") == ["000003", "279035121518989"]
    assert m.get_all("PID-3.5") == ["PI", "INS"]
    assert m.get_all("PID-11.7") == ["H", "BDL"]
    assert m.get_all("PID-3[2].5") == ["INS"]
    assert m.get_all("PV1-2") == ["I"]
    assert m.get_all("MSH-1") == ["|"]


def test_segment_occurrences() -> None:
    m = parse((HL7V2 / "mdm_t02_crimg_init.er7").read_bytes())
    assert m.get("OBX[3]-3.1") == "INVISIBLE_PATIENT"
    assert m.get("OBX-1") == "1"
    assert m.get("OBX[12]-1") == "12"
    assert m.get("OBX[13]-1") == ""
    assert m.get("PRT[2]-4.1") == "RCT"
    third = m.segment("OBX", 3)
    assert isinstance(third, Segment) and third.name == "OBX"
    assert third.get(3, 1, 1) == "INVISIBLE_PATIENT"
    assert m.segment("OBX", 0) is None and m.segment("NTE") is None


def test_segment_api() -> None:
    m = parse(A01)
    pid = m.segment("PID")
    assert pid is not None
    assert pid.fields[3].startswith("000003^")
    assert pid.fields[0] == "PID"
    msh = m.segment("MSH")
    assert msh is not None and msh.fields[1:4] == ["|", "^~\\&", "GAM"]
    assert pid.get(3, 2, 4, 2) == "1.2.250.1.213.1.4.10"
    assert pid.get(3, 0) == pid.fields[3]  # repetition 0: the whole field, raw
    assert pid.get_all(3, 1) == ["000003", "279035121518989"]
    assert "PAT-TROIS" not in repr(pid) and "PAT-TROIS" not in repr(m)
    assert "3975" in repr(m)


def test_values_are_cached() -> None:
    pid = parse(A01).segment("PID")
    assert pid is not None
    assert pid.get(5, 1, 1) is pid.get(5, 1, 1)


def test_segments_returns_a_copy() -> None:
    m = parse(A01)
    m.segments().clear()
    assert len(m.segments()) == 6


@pytest.mark.parametrize("sep", [b"\r", b"\n", b"\r\n"])
@pytest.mark.parametrize("tail", [b"", b"\r\n", b"\n\n\n", b"\r\r", b"\n  \n\t"])
def test_separators_give_the_same_result(sep: bytes, tail: bytes) -> None:
    reference = parse(A01)
    data = sep.join(_lines(A01)) + tail
    m = parse(data)
    assert m.raw == data
    assert m.text == reference.text
    assert m.header == reference.header
    assert [s.text for s in m.segments()] == [s.text for s in reference.segments()]
    assert m.get("ZBE-4") == "INSERT"
    assert normalise_segment_separators(data) == normalise_segment_separators(A01)


def test_normalise_segment_separators() -> None:
    assert normalise_segment_separators(b"MSH|a\r\nPID|1\nPV1|2\r\r\n \n") == (
        b"MSH|a\rPID|1\rPV1|2\r"
    )
    assert normalise_segment_separators(b"MSH|a\n\nPID|1 ") == b"MSH|a\rPID|1 \r"
    assert normalise_segment_separators(b"") == b""
    assert normalise_segment_separators(b"\r\n\n") == b""


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_text_is_the_normalised_payload(path: Path) -> None:
    data = path.read_bytes()
    assert parse(data).text == normalise_segment_separators(data).decode("utf-8")


def _with_charset(charset: str, codec: str, unit: str = "Unité € Œ") -> bytes:
    text = (
        f"MSH|^~\\&|GAM|Hôpital|DPI|CHU|20240306||ADT^A01^ADT_A01|1|P|2.5|||||FRA|{charset}\r"
        "PID|1||42^^^CHU||Dupré^Hélène^Chloë||19790328|F|||Rue de l'Évêque^^Besançon\r"
        f"ZBE|1|20240306||INSERT|N||{unit}\r"
    )
    return text.encode(codec)


def test_latin_1_message() -> None:
    data = _with_charset("8859/1", "latin-1", unit="Unité ½ ÿ")
    m = parse(data)
    assert (m.header.charset, m.header.codec) == ("8859/1", "latin-1")
    assert m.header.sending_facility == "Hôpital"
    assert m.get("PID-5.2") == "Hélène"
    assert m.get("PID-11.3") == "Besançon"
    assert m.get("ZBE-7") == "Unité ½ ÿ"


def test_8859_15_message() -> None:
    data = _with_charset("8859/15", "iso8859-15")
    m = parse(data)
    assert m.header.codec == "iso8859-15"
    assert m.get("PID-5.3") == "Chloë"
    assert m.get("ZBE-7") == "Unité € Œ"
    assert "€".encode("iso8859-15") in m.raw


def test_utf8_message_and_default_charset() -> None:
    data = _with_charset("", "utf-8")
    assert parse(data).get("ZBE-7") == "Unité € Œ"
    latin = _with_charset("", "iso8859-15")
    with pytest.raises(InputError) as info:
        parse(latin)
    assert info.value.hl7_code == "102"
    assert parse(latin, default_charset="8859/15").get("PID-5.1") == "Dupré"


def test_escapes_resolved_at_the_leaf() -> None:
    data = (
        b"MSH|^~\\&|A|B|C|D|2024||ORU^R01|1|P|2.5\r"
        b"OBX|1|FT|X||line 1\\.br\\a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f\\X41\\\\H\\!\\Zx\\||||||F\r"
        b"NTE|1||p\\S\\q^r\\T\\s&t~u\\F\\v\r"
    )
    m = parse(data)
    assert m.get("OBX-5") == "line 1\na|b^c&d~e\\fA\\H\\!\\Zx\\"
    assert m.get("NTE-3") == "p\\S\\q^r\\T\\s&t"  # non-leaf: raw
    assert m.get("NTE-3.1") == "p^q"
    assert m.get("NTE-3.2") == "r\\T\\s&t"
    assert m.get("NTE-3.2.1") == "r&s"
    assert m.get("NTE-3[2]") == "u|v"
    assert m.get_all("NTE-3.1") == ["p^q", "u|v"]


def test_hex_escape_uses_the_message_codec() -> None:
    utf8 = b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5\rPID|1||||\\XC3A9\\\r"
    assert parse(utf8).get("PID-5") == "é"
    latin = b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5|||||FR|8859/1\rPID|1||||\\XE9\\\r"
    assert parse(latin).get("PID-5") == "é"
    assert parse(utf8.replace(b"C3A9", b"E9")).get("PID-5") == "\\XE9\\"  # not UTF-8: literal


@pytest.mark.parametrize(
    "path", ["PID-3", "PID[2]-3[4].5.6", "MSH-9.1", "OBX[3]-5", "ZBE-4", "PV1-2", "Z01-1"]
)
def test_valid_paths(path: str) -> None:
    validate_path(path)


@pytest.mark.parametrize(
    "path",
    [
        "",
        "PID",
        "PID-",
        "pid-3",
        "PID-0",
        "PID-03",
        "PID-3.0",
        "PID[0]-3",
        "PID-3[]",
        "PID-3.1.2.3",
        "PIDX-3",
        "PI-3",
        "PID 3",
        "PID-3 ",
        "PID-a",
        "PID-3[2]x",
        "PID-1234567",
    ],
)
def test_invalid_paths(path: str) -> None:
    with pytest.raises(ValueError, match="SEG\\[occ\\]-field\\[rep\\]"):
        validate_path(path)
    with pytest.raises(ValueError):
        parse(A01).get(path)
    with pytest.raises(ValueError):
        parse(A01).get_all(path)


def test_parse_errors_are_input_errors() -> None:
    with pytest.raises(InputError):
        parse(b"")
    with pytest.raises(InputError) as info:
        parse(A01.replace(b"\nPV1|", b"\npv1|"))
    assert info.value.hl7_code == "100"


def test_parse_accepts_bytearray_and_returns_a_message() -> None:
    m = parse(bytearray(A01))  # type: ignore[arg-type]
    assert isinstance(m, Hl7Message) and isinstance(m.raw, bytes)
