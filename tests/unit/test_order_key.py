"""The ordering key read at ingest (eai.order_key): the establishment's own patient id."""

from __future__ import annotations

import hashlib

import pytest

from eai.order_key import order_key, ordering_id
from tests._paths import HL7V2

A01 = (HL7V2 / "pamfr_a01_admission.er7").read_bytes()
MSH = b"MSH|^~\\&|GAM|CHU-X^1.2.3^ISO|DPI|CHU-X|20240306||ADT^A08^ADT_A01|42|P|2.5\r"
INS = b"279035121518989^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.10&ISO^INS"
IPP = b"000003^^^CHU-X&000897406&N^PI"


def _msg(pid3: bytes, *, msh: bytes = MSH, extra: bytes = b"") -> bytes:
    return msh + b"EVN||20240306\rPID|1||" + pid3 + b"||PAT^DOMINIQUE^^^^^L\r" + extra


def test_the_ipp_and_the_sending_facility() -> None:
    assert ordering_id(A01) == "CHU-X\x1f000003"  # the fixture's PID-3: IPP, then INS
    assert ordering_id(_msg(IPP + b"~" + INS)) == "CHU-X\x1f000003"


def test_same_ipp_and_facility_same_key_whatever_else_differs() -> None:
    other = _msg(
        b"  000003 ^^^CHU-X&000897406&N^PI",
        msh=MSH.replace(b"GAM", b"LAB").replace(b"ADT^A08", b"ORU^R01"),
    )
    assert ordering_id(other) == ordering_id(_msg(IPP)) == "CHU-X\x1f000003"
    hashed = order_key(other, lambda s: hashlib.sha256(s.encode()).hexdigest())
    assert hashed == order_key(
        _msg(IPP + b"~" + INS), lambda s: hashlib.sha256(s.encode()).hexdigest()
    )
    assert len(hashed) == 64


def test_another_ipp_or_facility_another_key() -> None:
    assert ordering_id(_msg(b"000004^^^CHU-X^PI")) != ordering_id(_msg(IPP))
    assert ordering_id(_msg(IPP, msh=MSH.replace(b"|CHU-X^1.2.3", b"|CHU-Y"))) == "CHU-Y\x1f000003"


@pytest.mark.parametrize(
    "ins",
    [
        INS,  # type INS
        b"279035121518989^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO",  # OID only: NIR
        b"279035121518989^^^&1.2.250.1.213.1.4.9&ISO^NH",  # NIA
        b"279035121518989^^^&1.2.250.1.213.1.4.11&ISO",  # demo
        b"279035121518989^^^X^INS-C",
        b"^^^ignored^PI",  # no id value
    ],
)
def test_an_ins_first_still_gives_the_ipp(ins: bytes) -> None:
    assert ordering_id(_msg(ins + b"~" + IPP)) == "CHU-X\x1f000003"


def test_line_ends_do_not_matter() -> None:
    cr = _msg(IPP)
    assert ordering_id(cr.replace(b"\r", b"\n")) == ordering_id(cr)
    assert ordering_id(cr.replace(b"\r", b"\r\n")) == ordering_id(cr)
    assert ordering_id(cr.rstrip(b"\r")) == ordering_id(cr)  # PID last, unterminated


def test_other_delimiters() -> None:
    msg = _msg(IPP + b"~" + INS).replace(b"|", b"#").replace(b"^", b"*")
    assert msg.startswith(b"MSH#*~\\&#")
    assert ordering_id(msg) == "CHU-X\x1f000003"


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(MSH, id="no PID"),
        pytest.param(_msg(b""), id="empty PID-3"),
        pytest.param(_msg(INS), id="INS only"),
        pytest.param(MSH + b"PID|1\r", id="PID without PID-3"),
        pytest.param(_msg(IPP, extra=b"MRG|000002^^^CHU-X^PI\r"), id="a merge (MRG)"),
        pytest.param(_msg(IPP, extra=b"PID|1||000009^^^CHU-X^PI\r"), id="two PID"),
        pytest.param(_msg(IPP) + _msg(IPP), id="two messages"),
        pytest.param(b"<ClinicalDocument xmlns='urn:hl7-org:v3'/>", id="CDA"),
        pytest.param(b'{"spool": "x", "key": "y"}', id="DICOM reference"),
        pytest.param(b"", id="empty"),
        pytest.param(b"MSH|^~\\&", id="MSH-2 alone"),
        pytest.param(b"MSH|^^\\&|A|F\rPID|||1\r", id="repeated encoding character"),
        pytest.param(b"MSH\r^~\\&\rA\rF\rPID\r\r\r1", id="CR as field separator"),
        pytest.param(b"MSH|^~\\&|\rPID|||1\r", id="MSH-4 missing"),
    ],
)
def test_unknown_is_empty(payload: bytes) -> None:
    assert ordering_id(payload) == ""
    assert order_key(payload, lambda s: pytest.fail("nothing to hash")) == ""


def test_escaped_values_are_taken_as_sent() -> None:
    # an escape sequence is part of the id as the establishment sends it: same bytes, same key
    assert ordering_id(_msg(b"00\\T\\3^^^CHU-X^PI")) == "CHU-X\x1f00\\T\\3"
