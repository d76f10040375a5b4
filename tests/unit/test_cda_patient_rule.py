"""Charter rule CDA-PATIENT-DIFFERENT: the HL7 v2 patient (PID) and the patient of the CDA
the message embeds (recordTarget) must be one person (issue 15, point 2)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from eai import hl7
from eai._hl7_content import parse_hl7v2
from eai.identity_gate import identity_from_cda
from identity.charter import (
    CheckContext,
    document_patient_differs,
    evaluate_charter,
    load_charter,
)
from identity.patient import LocalId, PatientIdentity, identity_from_hl7
from tests._cda_patient import (
    ORU,
    OTHER_INS,
    RULE,
    cda_with,
    oru,
    plan_of,
)
from tests._paths import HL7V2

# --- reading the document's patient --------------------------------------------------------


def test_the_cda_patient_is_read_from_record_target() -> None:
    content = parse_hl7v2(ORU, None)
    doc = content.document_patient
    assert doc is not None
    assert (doc.ins, doc.ins_oid) == ("279035121518989", "1.2.250.1.213.1.4.10")
    assert doc.local_ids == (LocalId("1234567890121", "", "1.2.3.4.567.8.9.10", "PI"),)
    assert (doc.birth_name, doc.used_name) == ("PAT-TROIS", "PAT-TROIS")
    assert (doc.first_given_name, doc.birth_given_names) == ("DOMINIQUE", ("DOMINIQUE",))
    assert (doc.birth_date, doc.sex) == ("19790328", "F")
    assert "PAT-TROIS" not in repr(doc)


def test_an_unqualified_name_is_read_as_the_birth_name() -> None:
    plain = cda_with('<family qualifier="BR">PAT-TROIS</family>', "<family>MARTIN</family>")
    doc = parse_hl7v2(oru(plain), None).document_patient
    assert doc is not None
    assert doc.birth_name == "MARTIN"


def test_no_document_no_document_patient() -> None:
    adt = (HL7V2 / "pamfr_a01_admission.er7").read_bytes()
    assert parse_hl7v2(adt, None).document_patient is None
    refused = oru().replace(b"^Base64^PD94", b"^Base64^*D94", 1)
    assert parse_hl7v2(refused, None).document_patient is None


def test_a_cda_without_record_target_names_nobody() -> None:
    from lxml import etree

    empty = etree.fromstring(b"<ClinicalDocument xmlns='urn:hl7-org:v3'/>")
    assert identity_from_cda(empty) == PatientIdentity()
    mdm = (HL7V2 / "mdm_t02_crimg_init.er7").read_bytes()  # a text placeholder, no CDA
    assert parse_hl7v2(mdm, None).document_patient is None


# --- the comparison ------------------------------------------------------------------------

PID = identity_from_hl7(hl7.parse(ORU))
DOC = replace(PID, facility="")
LOCAL = LocalId("IPP-1", "CHU-X", "1.2.250.1.999.1", "PI")


def _differs(pid: PatientIdentity, doc: PatientIdentity) -> set[str]:
    ctx = CheckContext(test_feed=True, document_patient=doc)
    return {a.rule for a in evaluate_charter(load_charter(), pid, ctx)} & {RULE}


@pytest.mark.parametrize(
    ("pid", "doc", "difference"),
    [
        ({}, {}, ""),
        ({}, {"ins": OTHER_INS}, "ins"),
        ({}, {"ins": "2790 3512 1518 989"}, ""),  # spaces are not a difference
        # the INS decides when both carry one: a trait typed differently is not another person
        ({}, {"birth_date": "19790329"}, ""),
        # without an INS on one side: local id under the same authority, then the traits
        (
            {"ins": "", "local_ids": (LOCAL,)},
            {"local_ids": (replace(LOCAL, value="IPP-2"),)},
            "local_id",
        ),
        (
            {"ins": "", "local_ids": (LOCAL,)},
            {"local_ids": (replace(LOCAL, authority_oid="9"),)},
            "",
        ),
        ({"ins": ""}, {"birth_name": "PAT-QUATRE"}, "birth_name"),
        ({"ins": ""}, {"birth_name": "pat trois"}, ""),  # normalised: case, hyphen
        ({"ins": "", "birth_name": "Lefèvre-D'Ornano"}, {"birth_name": "LEFEVRE D ORNANO"}, ""),
        (
            {"ins": ""},
            {"first_given_name": "CLAUDE", "birth_given_names": ("CLAUDE",)},
            "first_given_name",
        ),
        ({"ins": ""}, {"first_given_name": "", "birth_given_names": ("Dominique", "Marie")}, ""),
        ({"ins": ""}, {"birth_date": "19790329"}, "birth_date"),
        ({"ins": ""}, {"birth_date": "1979"}, ""),  # compared on the common precision
        ({"ins": ""}, {"birth_date": "1980"}, "birth_date"),
        ({"ins": ""}, {"sex": "M"}, "sex"),
        ({"ins": ""}, {"sex": "U"}, ""),
        # absent is not different
        ({"ins": ""}, {"birth_name": "", "used_name": "", "birth_date": "", "sex": ""}, ""),
        # a document without a birth name: its name must be one of the PID's
        ({"ins": "", "used_name": "MARTIN"}, {"birth_name": "", "used_name": "MARTIN"}, ""),
        ({"ins": ""}, {"birth_name": "", "used_name": "MARTIN"}, "birth_name"),
    ],
)
def test_the_rule_compares_ins_or_local_id_and_traits_after_normalisation(
    pid: dict[str, Any], doc: dict[str, Any], difference: str
) -> None:
    mine, theirs = replace(PID, **pid), replace(DOC, **doc)
    assert document_patient_differs(mine, theirs) == difference
    assert _differs(mine, theirs) == ({RULE} if difference else set())


def test_the_rule_is_bundled_at_reject_and_silent_without_a_document() -> None:
    (rule,) = [r for r in load_charter() if r.id == RULE]
    assert rule.severity == "reject"
    other = replace(DOC, ins=OTHER_INS)
    assert not rule.holds(PID, CheckContext(document_patient=other))
    assert rule.holds(PID, CheckContext())
    (anomaly,) = [a for a in evaluate_charter([rule], PID, CheckContext(document_patient=other))]
    assert "recordTarget" in anomaly.message and OTHER_INS not in anomaly.message
    assert anomaly.message.endswith(" Différence constatée : l'INS.")
    assert "PAT-TROIS" not in anomaly.message
    later = replace(DOC, ins="", birth_date="19800101")
    (dated,) = evaluate_charter([rule], replace(PID, ins=""), CheckContext(document_patient=later))
    assert dated.message.endswith(" Différence constatée : la date de naissance.")
    assert "1980" not in dated.message


# --- in the pipeline -----------------------------------------------------------------------


def test_the_same_patient_goes_everywhere() -> None:
    plan = plan_of(oru())
    assert plan.status == "processed"
    assert [d.destination for d in plan.deliveries] == ["dmp", "dcc"]
    assert RULE not in {a[0] for a in plan.anomalies}


ANOTHER_INS = cda_with('extension="279035121518989"', f'extension="{OTHER_INS}"')
NO_INS = cda_with('root="1.2.250.1.213.1.4.10"', 'root="1.2.3.4.567.8.9.11"')  # a local id now


def _no_ins(old: str, new: str) -> bytes:
    text = NO_INS.decode("utf-8")
    start = text.index("<recordTarget")
    at = text.index(old, start)
    return (text[:at] + new + text[at + len(old) :]).encode("utf-8")


def test_a_cda_without_ins_and_the_same_traits_is_the_same_patient() -> None:
    assert plan_of(oru(NO_INS)).status == "processed"


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(oru(ANOTHER_INS), id="another INS"),
        pytest.param(oru(ANOTHER_INS, unpadded=True), id="another INS, base64 unpadded"),
        pytest.param(
            oru(_no_ins('<birthTime value="19790328"/>', '<birthTime value="19790329"/>')),
            id="no INS in the CDA, another birth date",
        ),
        pytest.param(oru(NO_INS, pid=("|19790328|F|", "|19790328|M|")), id="PID says M"),
        pytest.param(
            oru(
                _no_ins(
                    '<given qualifier="BR">DOMINIQUE</given>',
                    '<given qualifier="BR">CLAUDE</given>',
                ).replace(b"<given>DOMINIQUE</given>", b"<given>CLAUDE</given>")
            ),
            id="no INS in the CDA, another first given name",
        ),
    ],
)
def test_another_patient_in_the_cda_is_rejected_and_reported(payload: bytes) -> None:
    plan = plan_of(payload)
    assert plan.status == "rejected" and plan.deliveries == ()
    assert plan.reason == f"identity charter: {RULE}"
    assert (RULE, "reject") in {(a[0], a[1]) for a in plan.anomalies}
    assert plan.facility == "labo"
