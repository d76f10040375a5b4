"""eai.business_ack: ZAM^Z01/Z02/Z03 built from the national CR-BIO ORU, compared field by
field with the ANS samples, checked with hl7apy (HL7 2.6, strict segments), and made
follow-ups only when the message asked for them."""

from __future__ import annotations

from datetime import datetime

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message, parse_segment

from eai.business_ack import (
    SMTP_ERROR_CODES,
    application_error,
    asks_for,
    build_zam,
    dmp_error,
    smtp_error,
    unexplained_error,
    zam_follow_up,
)
from eai.errors import InputError
from eai.messages import MEDIA_CDA_XML, MEDIA_HL7V2, MessageFacts, OutboxItem
from tests._paths import HL7V2

ORU = b"\r".join((HL7V2 / "oru_r01_crbio_init.hl7").read_bytes().splitlines())
NOW = datetime(2021, 6, 6, 9, 33, 0)
MAILBOX = "adam.hoda@test-ci-sis.mssante.fr"


def _fields(payload: bytes, codec: str = "utf-8") -> list[list[str]]:
    return [s.split("|") for s in payload.decode(codec).replace("\n", "\r").split("\r") if s]


def _as_sample(built: list[list[str]]) -> list[list[str]]:
    """The instance values (MSH-7, EVN-2 times) blanked, after checking they are DTMs."""
    out = [list(s) for s in built]
    for seg, index in (("MSH", 6), ("EVN", 2)):
        (fields,) = [s for s in out if s[0] == seg]
        assert len(fields[index]) >= 12 and fields[index].isdigit(), fields[index]
        fields[index] = ""
    return out


def _hl7apy_checks(payload: bytes, codec: str = "utf-8") -> None:
    """Each segment valid HL7 2.6 for hl7apy (strict), and the message readable."""
    text = payload.decode(codec)
    for segment in text.strip("\r").split("\r"):
        parsed = parse_segment(segment, version="2.6", validation_level=VALIDATION_LEVEL.STRICT)
        assert parsed.validate(), segment
    message = parse_message(text, find_groups=False)
    assert message.msh.msh_12.value == "2.6"
    assert message.msh.msh_21.value == "2.1^CISIS_CDA_HL7_V2"


def test_a_negative_z01_is_the_ans_sample_field_by_field() -> None:
    zam = build_zam(
        ORU, "Z01", False, error=dmp_error("DMPClosed", "DMP fermé"), control_id="017", now=NOW
    )
    sample = _fields((HL7V2 / "zam_business_ack_dmp.er7").read_bytes())
    assert _as_sample(_fields(zam.payload)) == _as_sample(sample)
    assert (zam.control_id, zam.kind) == ("017", "business_ack ZAM^Z01")
    _hl7apy_checks(zam.payload)


def test_a_positive_z02_is_the_ans_sample_field_by_field() -> None:
    zam = build_zam(
        ORU, "Z02", True, mailbox=MAILBOX, mailbox_id="801234567897", control_id="018", now=NOW
    )
    sample = _fields((HL7V2 / "zam_business_ack_mss.er7").read_bytes())
    assert _as_sample(_fields(zam.payload)) == _as_sample(sample)
    _hl7apy_checks(zam.payload)


def test_a_positive_z01_has_no_err_and_answers_the_source_msh10() -> None:
    zam = build_zam(ORU, "Z01", True)
    segments = _fields(zam.payload)
    assert [s[0] for s in segments] == ["MSH", "EVN", "OBX"]
    obx = segments[2]
    assert (obx[2], obx[4], obx[5], obx[11]) == ("CWE", "015", "Y^^expandedYes-NoIndicator", "F")
    assert segments[0][8:12] == ["ZAM^Z01^ZAM_Z01", zam.control_id, "P", "2.6"]
    assert segments[0][16:18] == ["FRA", "UNICODE UTF-8"]
    _hl7apy_checks(zam.payload)


def test_a_negative_z02_carries_its_smtp_error_code() -> None:
    zam = build_zam(ORU, "Z02", False, mailbox=MAILBOX, error=smtp_error(550))
    err = _fields(zam.payload)[-1]
    assert err[:5] == ["ERR", "", "", "207^Application internal error^messageErrorCondition", "E"]
    assert err[5] == f"550^{SMTP_ERROR_CODES['550']}^SMTPERRORCODE"
    assert smtp_error("599", "Greylisted").label == "Greylisted"
    _hl7apy_checks(zam.payload)


def test_a_z03_names_the_reader_and_an_application_error() -> None:
    zam = build_zam(
        ORU, "Z03", False, mailbox="lecteur@test.mssante.fr", error=application_error(902)
    )
    segments = _fields(zam.payload)
    assert segments[2][3] == "ACK_LECTURE_MSS^Accusé de lecture^AckMetierZAM"
    assert segments[3][2:6] == [
        "XTN",
        "LECTEUR_MSS^Lecteur du courriel MSSanté^AckMetierZAM",
        "",
        "^^X.400^lecteur@test.mssante.fr",
    ]
    assert segments[4][5] == "902^Identifiant patient inconnu^applicationErrorCondition"
    with pytest.raises(ValueError):
        application_error(999)
    _hl7apy_checks(zam.payload)


def test_a_failure_without_a_table_code_gives_its_reason_in_err8_escaped() -> None:
    zam = build_zam(ORU, "Z01", False, error=unexplained_error("HTTP 400 | refused ^ here"))
    err = _fields(zam.payload)[-1]
    assert err[3:6] == ["207^Application internal error^messageErrorCondition", "E", ""]
    assert err[8] == "HTTP 400 \\F\\ refused \\S\\ here"
    bare = _fields(build_zam(ORU, "Z01", False).payload)[-1]
    assert bare == ["ERR", "", "", "207^Application internal error^messageErrorCondition", "E"]
    _hl7apy_checks(zam.payload)


def test_the_source_charset_and_its_raw_applications_are_kept() -> None:
    latin = ORU.decode("utf-8").replace("UNICODE UTF-8", "8859/15")
    latin = latin.replace("|SIL-Y|labo|", "|SIL-Y^1.2.3^ISO|labo|", 1)
    zam = build_zam(latin.encode("iso8859_15"), "Z01", True)
    assert "Accusé".encode("iso8859_15") in zam.payload
    msh = _fields(zam.payload, "iso8859_15")[0]
    assert msh[4:6] == ["SIL-Y^1.2.3^ISO", "labo"]
    assert msh[17] == "8859/15"
    _hl7apy_checks(zam.payload, "iso8859_15")


def test_a_mailbox_is_escaped_and_required_for_z02_z03() -> None:
    zam = build_zam(ORU, "Z02", True, mailbox="a|b@x.fr")
    assert _fields(zam.payload)[3][5] == "^^X.400^a\\F\\b@x.fr"
    for event in ("Z02", "Z03"):
        with pytest.raises(ValueError):
            build_zam(ORU, event, True)  # type: ignore[arg-type]
    with pytest.raises(InputError):
        build_zam(b"<ClinicalDocument/>", "Z01", True)


def test_control_ids_are_fresh_and_fit_msh10() -> None:
    ids = {build_zam(ORU, "Z01", True).control_id for _ in range(50)}
    assert len(ids) == 50
    assert all(len(i) <= 20 for i in ids)


def _item(
    flags: dict[str, str], return_to: str = "lab-return", media: str = MEDIA_HL7V2
) -> OutboxItem:
    return OutboxItem(
        7, 3, "dmp", ORU, "015", "k", 1, media_type=media, facts=MessageFacts(flags),
        return_to=return_to,
    )  # fmt: skip


def test_a_follow_up_only_when_asked_and_routed_back() -> None:
    asked = {"ACK_RECEPTION": "Y", "ACK_LECTURE_MSS": "N"}
    follow_up = zam_follow_up(_item(asked), "Z01", True)
    assert follow_up is not None
    assert (follow_up.destination, follow_up.kind, follow_up.media_type) == (
        "lab-return",
        "business_ack ZAM^Z01",
        MEDIA_HL7V2,
    )
    assert _fields(follow_up.payload)[0][9] == follow_up.control_id
    assert zam_follow_up(_item(asked), "Z03", True, mailbox=MAILBOX) is None
    assert zam_follow_up(_item({"ACK_RECEPTION": "N"}), "Z01", True) is None
    assert zam_follow_up(_item({}), "Z01", True) is None
    assert zam_follow_up(_item(asked, return_to=""), "Z01", True) is None
    assert zam_follow_up(_item(asked, media=MEDIA_CDA_XML), "Z01", True) is None
    assert asks_for(MessageFacts({"ACK_LECTURE_MSS": "Y"}), "Z03")
    assert not asks_for(MessageFacts({"ACK_LECTURE_MSS": "Y"}), "Z02")
