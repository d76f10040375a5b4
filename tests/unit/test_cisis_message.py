"""CI-SIS CDA in HL7 v2: routing facts, document action, PRT recipients, embedded document."""

from __future__ import annotations

import base64
import time

import pytest

from eai import hl7
from eai._hl7_content import cisis_facts, parse_hl7v2
from eai.errors import InputError
from tests._cisis import ORU, build, edit, segments
from tests._paths import HL7V2
from tests.engine_harness import A01

MDM = (HL7V2 / "mdm_t02_crimg_init.er7").read_bytes()
ZAM = (HL7V2 / "zam_business_ack_mss.er7").read_bytes()
INS = "279035121518989"
PATIENT_NAMES = ("PAT-TROIS", "DOMINIQUE")
FLAGS = (
    "MASQUE_PS",
    "INVISIBLE_PATIENT",
    "INVISIBLE_REP_LEGAUX",
    "CONNEXION_SECRETE",
    "MODIF_CONF_CODE",
    "DESTDMP",
    "DESTMSSANTEPS",
    "DESTMSSANTEPAT",
    "ACK_RECEPTION",
    "ACK_LECTURE_MSS",
)


def facts(payload: bytes) -> dict[str, str]:
    return dict(parse_hl7v2(payload, None).facts)


# --- facts ---------------------------------------------------------------------------------


def test_oru_facts() -> None:
    found = facts(ORU)
    assert found == {
        "MASQUE_PS": "N",
        "INVISIBLE_PATIENT": "N",
        "INVISIBLE_REP_LEGAUX": "N",
        "CONNEXION_SECRETE": "N",
        "MODIF_CONF_CODE": "N",
        "DESTDMP": "Y",
        "DESTMSSANTEPS": "Y",
        "DESTMSSANTEPAT": "Y",
        "ACK_RECEPTION": "Y",
        "ACK_LECTURE_MSS": "Y",
        "CORPSMAIL_PS": "Y",
        "document_action": "new",
        "document_code": "11502-2",
        "mss_recipients": "2",
        "mss_recipient_kinds": "patient,professional",
    }


def test_mdm_facts() -> None:
    found = facts(MDM)
    assert {k: found[k] for k in FLAGS} == {
        "MASQUE_PS": "N",
        "INVISIBLE_PATIENT": "Y",
        "INVISIBLE_REP_LEGAUX": "Y",
        "CONNEXION_SECRETE": "Y",
        "MODIF_CONF_CODE": "N",
        "DESTDMP": "Y",
        "DESTMSSANTEPS": "Y",
        "DESTMSSANTEPAT": "N",
        "ACK_RECEPTION": "N",
        "ACK_LECTURE_MSS": "N",
    }
    assert found["CORPSMAIL_PS"] == "Y"
    assert found["document_action"] == "new"
    assert found["document_code"] == "18748-4"
    assert (found["mss_recipients"], found["mss_recipient_kinds"]) == ("1", "professional")


@pytest.mark.parametrize("payload", [ORU, MDM])
def test_facts_hold_no_patient_data(payload: bytes) -> None:
    text = " ".join(f"{k}={v}" for k, v in facts(payload).items())
    for secret in (INS, *PATIENT_NAMES, "mssante.fr", "hoda", "Q2hlciBjb25m"):
        assert secret.lower() not in text.lower()
    assert INS not in repr(parse_hl7v2(payload, None))


def test_plain_adt_has_no_facts_and_stays_fast() -> None:
    assert [k for k in facts(A01) if not k.startswith("DMP_")] == []  # only its ZFA's
    start = time.perf_counter()
    for _ in range(2000):
        parse_hl7v2(A01, None)
    per_message = (time.perf_counter() - start) / 2000
    assert per_message < 0.001  # ~20 us on a dev laptop; generous bound for CI


def test_zam_business_ack_is_cisis_without_document() -> None:
    assert hl7.is_cisis(hl7.parse(ZAM))
    assert facts(ZAM) == {}


def test_flag_values_are_codes_only() -> None:
    weird = edit(ORU, "OBX", 5, "oui mais non^^expandedYes-NoIndicator", occurrence=7)
    assert facts(weird)["DESTDMP"] == "invalid"
    key = edit(ORU, "OBX", 3, "BAD KEY!^x^MetaDMPMSS", occurrence=8)
    found = facts(key)
    assert "DESTMSSANTEPS" not in found and "BAD KEY!" not in found


def test_message_without_msh21_but_oru_gets_facts() -> None:
    plain = edit(ORU, "MSH", 21, "")
    assert not hl7.is_cisis(hl7.parse(plain))
    assert facts(plain)["document_code"] == "11502-2"


def test_adt_naming_the_profile_gets_facts() -> None:
    tagged = edit(A01, "MSH", 21, "2.1^CISIS_CDA_HL7_V2")
    assert hl7.is_cisis(hl7.parse(tagged))
    assert [k for k in facts(tagged) if not k.startswith("DMP_")] == []  # ZFA's DMP_* only


# --- document action ---------------------------------------------------------------------------


def mdm(trigger: str, orc: str, status: str) -> bytes:
    out = edit(MDM, "MSH", 9, f"MDM^{trigger}^MDM_T02")
    out = edit(out, "ORC", 1, orc)
    return edit(out, "OBX", 11, status, occurrence=1)


def oru(orc: str, status: str) -> bytes:
    return edit(edit(ORU, "ORC", 1, orc), "OBX", 11, status, occurrence=1)


@pytest.mark.parametrize(
    ("payload", "action"),
    [
        (mdm("T02", "NW", "F"), "new"),
        (mdm("T10", "RO", "C"), "replace"),
        (mdm("T04", "CA", "D"), "delete"),
        (mdm("T11", "CA", "D"), "delete"),
        (mdm("T10", "", ""), "replace"),  # the trigger alone is enough
        (oru("NW", "F"), "new"),
        (oru("RO", "C"), "replace"),
        (oru("RP", "C"), "replace"),
        (oru("XO", "C"), "replace"),
        (oru("CA", "D"), "delete"),
        (oru("", "C"), "replace"),
    ],
)
def test_document_action(payload: bytes, action: str) -> None:
    assert facts(payload)["document_action"] == action


@pytest.mark.parametrize(
    "payload", [mdm("T10", "NW", "C"), mdm("T02", "NW", "D"), oru("NW", "C"), oru("CA", "F")]
)
def test_inconsistent_action_is_refused(payload: bytes) -> None:
    with pytest.raises(InputError) as info:
        parse_hl7v2(payload, None)
    assert "inconsistent document action" in info.value.reason
    assert info.value.hl7_code == "207"


def test_unknown_status_gives_no_action() -> None:
    assert "document_action" not in facts(oru("", "P"))


def test_lab_order_without_document_says_nothing() -> None:
    segs = [s for s in segments(ORU) if not s.startswith("OBX|1|")]
    assert "document_action" not in facts(build(segs))
    assert "document_code" not in facts(build(segs))


# --- PRT participants ------------------------------------------------------------------------


def test_participants_accessor_gives_addresses() -> None:
    found = hl7.mss_participants(hl7.parse(ORU))
    assert [(p.role, p.kind) for p in found] == [
        ("SB", "professional"),
        ("RCT", "professional"),
        ("RCT", "patient"),
        ("REPLY", "address"),
    ]
    assert found[1].address == "adam.hoda@test-ci-sis.mssante.fr"
    assert found[1].identifier == "801234567897"
    assert found[1].identifier_system == "1.2.250.1.71.4.2.1"
    assert found[1].identifier_type == "IDNPS"
    patient = found[2]
    assert patient.address.endswith("@patient.mssante.fr")
    assert patient.identifier_system == "1.2.250.1.213.1.4.10"
    assert patient.identifier_type == "INS"
    assert INS not in repr(found) and "mssante" not in repr(found)


def test_organisation_device_and_patient_mailbox_kinds() -> None:
    segs = segments(MDM)
    at = next(i for i, s in enumerate(segs) if s.startswith("PRT||UC||RCT"))
    segs[at + 1 : at + 1] = [
        "PRT||UC||RCT^^participation||||Radiologie^^^^^&120456789&ISO^UF^^^3435|||||||"
        "^^X.400^radiologie@hopitalA.mssante.fr",
        "PRT||UC||RCT^^participation||||||12|||||^^X.400^appli@hopitalB.mssante.fr",
        "PRT||UC||RCT^^participation|||||||||||^^X.400^146026322000196@patient.mssante.fr",
    ]
    payload = build(segs)
    found = [p for p in hl7.mss_participants(hl7.parse(payload)) if p.role == "RCT"]
    assert [p.kind for p in found] == ["professional", "organisation", "device", "patient"]
    assert found[1].identifier == "3435" and found[1].identifier_type == "UF"
    assert found[1].identifier_system == "120456789"
    assert facts(payload)["mss_recipients"] == "4"
    assert facts(payload)["mss_recipient_kinds"] == "device,organisation,patient,professional"


# --- embedded document ----------------------------------------------------------------------


def test_oru_embedded_cda() -> None:
    (doc,) = hl7.embedded_documents(hl7.parse(ORU))
    assert (doc.obx, doc.code, doc.code_system, doc.result_status) == (1, "11502-2", "LN", "F")
    assert doc.media_type == "text/xml"
    assert doc.data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    assert b"<ClinicalDocument" in doc.data and doc.data.rstrip().endswith(b"</ClinicalDocument>")
    assert "bytes" in repr(doc) and "Clinical" not in repr(doc)


def test_mdm_placeholder_is_a_clear_error() -> None:
    with pytest.raises(InputError) as info:
        hl7.embedded_documents(hl7.parse(MDM))
    assert info.value.reason == (
        "OBX[1]-5.5: the ED data (OBX-5.3 XML) does not decode to an XML document"
    )
    assert info.value.location == "OBX[1]-5.5"


def _mdm_with(data: str, kind: str = "text") -> bytes:
    return edit(MDM, "OBX", 5, f"^{kind}^XML^Base64^{data}", occurrence=1)


def test_escapes_and_line_breaks_are_resolved() -> None:
    xml = b"<?xml version='1.0'?><ClinicalDocument xmlns='urn:hl7-org:v3'/>"
    encoded = base64.b64encode(xml).decode()
    split = encoded[:20] + "\\X0D0A\\" + encoded[20:40] + "\\.br\\" + encoded[40:]
    (doc,) = hl7.embedded_documents(hl7.parse(_mdm_with(split)))
    assert doc.data == xml
    (bom,) = hl7.embedded_documents(
        hl7.parse(_mdm_with(base64.b64encode(b"\xef\xbb\xbf  " + xml).decode(), "Application"))
    )
    assert bom.media_type == "application/xml"


def test_bad_base64_is_a_clear_error() -> None:
    with pytest.raises(InputError) as info:
        hl7.embedded_documents(hl7.parse(_mdm_with("not*base64")))
    assert info.value.reason == "OBX[1]-5.5: the ED data is not valid base64"


def test_non_xml_ed_is_not_a_document() -> None:
    pdf = edit(MDM, "OBX", 5, "^application^PDF^Base64^JVBERi0=", occurrence=1)
    assert hl7.embedded_documents(hl7.parse(pdf)) == []
    assert "document_code" not in facts(pdf)


def test_facts_do_not_decode_the_document() -> None:
    # the routing facts never need the document: the MDM placeholder still routes
    assert cisis_facts(hl7.parse(MDM))["document_code"] == "18748-4"
