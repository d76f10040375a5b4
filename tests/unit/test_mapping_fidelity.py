"""Lab fidelity (issue 15, points 3-6 and 8): what a DMP or SCAD integrator reads in the Bundle.

Inputs are built from the national fixtures (copied and edited here, never in place):
deletions and replacements reach the DiagnosticReport and results, coding systems are
URIs (and the validation says so when one is not), an XD-LAB document under another
code maps with crbio, comments on acts become notes, versionNumber, PID-32,
practiceSetting order, a point reference range whose text differs is flagged.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
from lxml import etree

import mappings
import tests._fhir_sink  # noqa: F401 - registers the fhir-sink destination (map: routes)
from eai.cda import parse_cda
from mappings._transforms import compile_transform
from mappings._validate import bundle_problems, system_problem
from mappings.functions.cda_lab import RANGE_TEXT_TAG
from mappings.functions.cisis_patient import RELIABILITY
from tests._cisis import ORU, edit, mdm_with
from tests._paths import CDA

H = "urn:hl7-org:v3"
NS = {"hl7": H}
TSH = CDA / "BIO-CR-BIO_2024.01_TSH_1.xml"
ELECTRO = CDA / "BIO-CR-BIO_2024.01_Electrophorese.xml"
IMG = CDA / "IMG_CR_IMG_2024.01.xml"
VERSION_EXT = "http://hl7.org/fhir/5.0/StructureDefinition/extension-DocumentReference.version"
XD_LAB = "1.3.6.1.4.1.19376.1.3.3"


def tree(path: Any) -> etree._Element:
    return etree.parse(str(path)).getroot()


def data(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def one(root: etree._Element, path: str) -> etree._Element:
    found = root.xpath(path, namespaces=NS)
    assert isinstance(found, list) and found, path
    element = found[0]
    assert isinstance(element, etree._Element)
    return element


def sub(parent: etree._Element, tag: str, **attrs: str) -> etree._Element:
    return etree.SubElement(parent, f"{{{H}}}{tag}", attrs)


def convert(payload: bytes, content_type: str = "cda", mapping: str | None = None) -> Any:
    bundle = mappings.convert(payload, content_type, mapping)
    assert bundle_problems(bundle, "full") == []
    return bundle


def of_type(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def first(bundle: dict[str, Any], kind: str) -> dict[str, Any]:
    return of_type(bundle, kind)[0]


def oru_with(cda: bytes, orc: str = "NW", status: str = "F") -> bytes:
    """The national ORU carrying ``cda`` instead of its own, with ORC-1 and OBX-11."""
    encoded = base64.b64encode(cda).decode()
    out = edit(ORU, "OBX", 5, f"^text^XML^Base64^{encoded}", occurrence=_cda_obx())
    return edit(edit(out, "ORC", 1, orc), "OBX", 11, status, occurrence=_cda_obx())


def _cda_obx() -> int:
    obx = [s for s in ORU.decode().replace("\n", "\r").split("\r") if s.startswith("OBX|")]
    return next(i for i, s in enumerate(obx, 1) if s.split("|")[2] == "ED")


# --------------------------------------------------------------------------- point 3


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(lambda: mdm_with(TSH.read_bytes(), "T04", "CA", "D"), id="MDM^T04"),
        pytest.param(lambda: oru_with(TSH.read_bytes(), "CA", "D"), id="ORU CA/D"),
    ],
)
def test_a_deletion_withdraws_the_report_and_its_results(payload: Any) -> None:
    bundle = convert(payload(), "hl7v2")
    assert first(bundle, "DocumentReference")["status"] == "entered-in-error"
    assert first(bundle, "DiagnosticReport")["status"] == "entered-in-error"
    observations = of_type(bundle, "Observation")
    assert observations and {o["status"] for o in observations} == {"entered-in-error"}
    assert all(s.get("status") != "entered-in-error" for s in of_type(bundle, "Specimen"))


def test_a_new_document_leaves_the_report_final() -> None:
    bundle = convert(oru_with(TSH.read_bytes()), "hl7v2")
    report = first(bundle, "DiagnosticReport")
    assert report["status"] == "final"
    assert all(i.get("use") != "old" for i in report["identifier"])
    assert {o["status"] for o in of_type(bundle, "Observation")} == {"final"}


def test_a_replacement_report_keeps_the_replaced_document_id() -> None:
    payload = mdm_with(TSH.read_bytes(), "T10", "RO", "C")
    payload = edit(payload, "TXA", 13, "58131^^1.2.250.2345.3245.13^ISO")
    bundle = convert(payload, "hl7v2")
    report = first(bundle, "DiagnosticReport")
    assert {"use": "old", "system": "urn:oid:1.2.250.2345.3245.13", "value": "58131"} in report[
        "identifier"
    ]
    assert report["status"] == "corrected"
    assert {o["status"] for o in of_type(bundle, "Observation")} == {"final"}


def test_a_replacement_naming_no_parent_still_corrects_the_report() -> None:
    bundle = convert(oru_with(TSH.read_bytes(), "RO", "C"), "hl7v2")
    report = first(bundle, "DiagnosticReport")
    assert report["status"] == "corrected"
    assert all(i.get("use") != "old" for i in report["identifier"])


def test_a_cda_replacing_another_links_its_report_without_hl7() -> None:
    root = tree(TSH)
    version = one(root, "hl7:versionNumber")
    related = etree.Element(f"{{{H}}}relatedDocument", typeCode="RPLC")
    parent = sub(related, "parentDocument")
    sub(parent, "id", root="1.2.250.1.213.1.1.1.55.2024.8")
    version.addnext(related)
    bundle = convert(data(root))
    doc = first(bundle, "DocumentReference")
    assert doc["relatesTo"][0]["code"] == "replaces"
    report = first(bundle, "DiagnosticReport")
    old = [i for i in report["identifier"] if i.get("use") == "old"]
    assert old == [
        {
            "use": "old",
            "system": "urn:ietf:rfc:3986",
            "value": "urn:oid:1.2.250.1.213.1.1.1.55.2024.8",
        }
    ]
    assert report["status"] == "corrected"


# --------------------------------------------------------------------------- point 4


def _all_systems(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k == "system" and isinstance(v, str)]
        return found + [s for k, v in node.items() if k != "telecom" for s in _all_systems(v)]
    if isinstance(node, list):
        return [s for item in node for s in _all_systems(item)]
    return []


def test_a_coding_system_outside_the_table_becomes_an_oid_urn() -> None:
    root = tree(IMG)
    one(root, "hl7:documentationOf/hl7:serviceEvent/hl7:code").set(
        "codeSystem", "1.2.250.1.213.1.1.5.130"
    )
    one(root, "hl7:confidentialityCode").set("codeSystem", "HL7-CONF")  # neither OID nor URI
    bundle = convert(data(root))
    doc = first(bundle, "DocumentReference")
    assert doc["context"]["event"][0]["coding"][0]["system"] == "urn:oid:1.2.250.1.213.1.1.5.130"
    assert "system" not in doc["securityLabel"][0]["coding"][0]
    assert all(not system_problem(s) for s in _all_systems(bundle))


@pytest.mark.parametrize("path", sorted(CDA.glob("*.xml")), ids=lambda p: p.name)
def test_every_system_of_the_national_documents_is_a_uri(path: Any) -> None:
    bundle = convert(path.read_bytes())
    systems = _all_systems(bundle)
    assert systems and [s for s in systems if system_problem(s)] == []


def test_the_system_transform() -> None:
    from zoneinfo import ZoneInfo

    table = {"2.16.840.1.113883.6.1": "http://loinc.org"}
    apply = compile_transform({"system": "t"}, {"t": table}, ZoneInfo("UTC"))
    assert apply("2.16.840.1.113883.6.1") == "http://loinc.org"
    assert apply("1.2.250.1.213.1.1.5.130") == "urn:oid:1.2.250.1.213.1.1.5.130"
    assert apply("urn:oid:1.2.3") == "urn:oid:1.2.3"
    assert apply("urn:oid:1.2.x") == ""
    assert apply("http://snomed.info/sct") == "http://snomed.info/sct"
    assert apply("ABCD1234-0000-4000-8000-000000000001") == (
        "urn:uuid:abcd1234-0000-4000-8000-000000000001"
    )
    assert apply("LN") == ""


def _bundle_with(resource: dict[str, Any]) -> dict[str, Any]:
    url = "urn:uuid:00000000-0000-4000-8000-000000000001"
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": url, "resource": resource}],
    }


@pytest.mark.parametrize("level", ["full", "cached", "light"])
@pytest.mark.parametrize(
    ("resource", "where"),
    [
        (
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [{"system": "1.2.250.1.213.1.1.5.130", "code": "x"}]},
            },
            "Observation.code.coding[0].system: not an absolute URI",
        ),
        (
            {"resourceType": "Patient", "identifier": [{"system": "1.2.250.1.71", "value": "1"}]},
            "Patient.identifier[0].system: not an absolute URI",
        ),
        (
            {
                "resourceType": "Patient",
                "extension": [
                    {
                        "url": "http://example.org/x",
                        "valueCoding": {"system": "urn:oid:1.2.x", "code": "a"},
                    }
                ],
            },
            "Patient.extension[0].valueCoding.system: not a valid OID",
        ),
        (
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "t"},
                "valueQuantity": {"value": 1, "system": "urn:uuid:not-a-uuid", "code": "g"},
            },
            "Observation.valueQuantity.system: not a valid UUID",
        ),
    ],
)
def test_the_validation_refuses_a_system_that_is_not_a_uri(
    level: Any, resource: dict[str, Any], where: str
) -> None:
    problems = bundle_problems(_bundle_with(resource), level)
    assert any(p.startswith(where) for p in problems), problems


@pytest.mark.parametrize("level", ["full", "cached", "light"])
def test_the_validation_takes_uris_and_contact_point_systems(level: Any) -> None:
    patient = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:1.2.250.1.213.1.4.10", "value": "1"}],
        "telecom": [{"system": "phone", "value": "0102030405"}],
        "extension": [
            {
                "url": "http://example.org/x",
                "valueCoding": {"system": "http://loinc.org", "code": "a"},
            }
        ],
    }
    assert bundle_problems(_bundle_with(patient), level) == []


def test_convert_refuses_a_mapping_that_writes_a_bare_oid(monkeypatch: pytest.MonkeyPatch) -> None:
    from eai.errors import InputError
    from mappings.functions import cda_types

    monkeypatch.setattr(cda_types, "system_uri", lambda oid: oid.strip())
    with pytest.raises(InputError, match="not an absolute URI"):
        mappings.convert(TSH.read_bytes(), "cda", "crbio")


# --------------------------------------------------------------------------- point 5


def _rapid_test(*, keep_document_template: bool = True) -> etree._Element:
    """A TSH report under another LOINC code (a rapid test report, TROD-like)."""
    root = tree(TSH)
    one(root, "hl7:code").set("code", "96627-5")
    if not keep_document_template:
        root.remove(one(root, f"hl7:templateId[@root='{XD_LAB}']"))
    return root


@pytest.mark.parametrize("keep", [True, False], ids=["document template", "section templates"])
def test_an_xd_lab_document_under_another_code_maps_with_crbio(keep: bool) -> None:
    payload = data(_rapid_test(keep_document_template=keep))
    assert mappings.default_mapping_for("cda", parse_cda(payload, None).routable) == "crbio"
    bundle = convert(payload)
    assert len(of_type(bundle, "Observation")) == 2
    report = first(bundle, "DiagnosticReport")
    assert report["code"]["coding"][0]["code"] == "96627-5"
    assert len(report["result"]) == 2


def test_documents_without_lab_templates_keep_the_generic_mapping() -> None:
    for path in (IMG, CDA / "TLM-CR_2022.01.xml", CDA / "CANCER-FRCP_2022.01_Appareil.xml"):
        payload = path.read_bytes()
        assert (
            mappings.default_mapping_for("cda", parse_cda(payload, None).routable) == "cda-document"
        )


def test_a_rapid_test_report_in_an_oru_keeps_its_results() -> None:
    bundle = convert(oru_with(data(_rapid_test())), "hl7v2")
    assert len(of_type(bundle, "Observation")) == 2
    assert first(bundle, "DiagnosticReport")["code"]["coding"][0]["code"] == "96627-5"


# --------------------------------------------------------------------------- point 6


def test_the_comment_of_an_entry_act_reaches_its_results() -> None:
    root = tree(TSH)
    act = one(root, "//hl7:entry[hl7:templateId/@root='1.3.6.1.4.1.19376.1.3.1']/hl7:act")
    rel = sub(act, "entryRelationship", typeCode="SUBJ")
    comment = sub(rel, "act", classCode="ACT", moodCode="EVN")
    sub(comment, "templateId", root="1.3.6.1.4.1.19376.1.5.3.1.4.2")
    sub(comment, "code", code="48767-8", codeSystem="2.16.840.1.113883.6.1")
    sub(comment, "text").text = "Contrôle dans trois mois"
    sub(comment, "statusCode", code="completed")
    bundle = convert(data(root))
    observations = of_type(bundle, "Observation")
    assert len(observations) == 2
    assert all({"text": "Contrôle dans trois mois"} in o.get("note", []) for o in observations)


def test_the_microbiology_comment_of_the_national_example_is_kept() -> None:
    bundle = convert(ELECTRO.read_bytes())
    noted = [
        o
        for o in of_type(bundle, "Observation")
        if {"text": "Traitement immédiat"} in o.get("note", [])
    ]
    # the top-level results and groups of the microbiology act: macroscopy, microscopy,
    # the two isolates
    assert len(noted) == 4
    assert all(o in of_type(bundle, "Observation") for o in noted)


# --------------------------------------------------------------------------- point 8


def test_the_version_number_is_on_the_document_reference() -> None:
    root = tree(TSH)
    one(root, "hl7:versionNumber").set("value", "3")
    for mapping in ("crbio", "cda-document"):
        doc = first(convert(data(root), mapping=mapping), "DocumentReference")
        assert {"url": VERSION_EXT, "valueString": "3"} in doc["extension"]


def _reliability(bundle: dict[str, Any]) -> list[Any]:
    patient = first(bundle, "Patient")
    return [e for e in patient.get("extension", []) if e["url"] == RELIABILITY]


@pytest.mark.parametrize(("pid32", "status"), [("VALI", "VALI"), ("PROV", "PROV"), ("", None)])
def test_the_oru_patient_gets_the_identity_status_of_pid_32(pid32: str, status: str | None) -> None:
    bundle = convert(edit(ORU, "PID", 32, pid32), "hl7v2")
    found = _reliability(bundle)
    if status is None:
        assert found == []
    else:
        (ext,) = found
        assert ext["extension"][0]["valueCoding"]["code"] == status


def test_the_mdm_patient_gets_pid_32_too() -> None:
    payload = edit(mdm_with(TSH.read_bytes()), "PID", 32, "QUAL")
    (ext,) = _reliability(convert(payload, "hl7v2"))
    assert ext["extension"][0]["valueCoding"]["code"] == "QUAL"


def _setting(root: etree._Element) -> str | None:
    context = first(convert(data(root)), "DocumentReference")["context"]
    setting = context.get("practiceSetting")
    return None if setting is None else str(setting["coding"][0]["code"])


def _industry(parent: etree._Element, code: str) -> None:
    org = parent.find(f"{{{H}}}representedOrganization")
    if org is None:
        org = sub(parent, "representedOrganization")
    for old in org.findall(f"{{{H}}}standardIndustryClassCode"):
        org.remove(old)
    sub(org, "standardIndustryClassCode", code=code, codeSystem="1.2.250.1.213.1.1.4.9")


def test_practice_setting_prefers_the_performer_then_the_author_then_the_legal_authenticator() -> (
    None
):
    # the national examples: legal authenticator ETABLISSEMENT, performer AMBULATOIRE
    assert _setting(tree(ELECTRO)) == "AMBULATOIRE"
    root = tree(TSH)
    assert _setting(root) == "AMBULATOIRE"
    performer = one(root, "hl7:documentationOf/hl7:serviceEvent/hl7:performer/hl7:assignedEntity")
    organization = one(performer, "hl7:representedOrganization")
    organization.remove(one(organization, "hl7:standardIndustryClassCode"))
    _industry(one(root, "hl7:author/hl7:assignedAuthor"), "LIBERAL")
    assert _setting(root) == "LIBERAL"  # no performer code: the author's
    author = one(root, "hl7:author/hl7:assignedAuthor/hl7:representedOrganization")
    author.remove(one(author, "hl7:standardIndustryClassCode"))
    assert _setting(root) == "ETABLISSEMENT"  # nor the author's: the legal authenticator's


def _tsh_range(root: etree._Element) -> etree._Element:
    return one(root, "(//hl7:observation[hl7:code/@code='3016-3']//hl7:observationRange)[1]")


def _flagged(root: etree._Element) -> bool:
    bundle = convert(data(root))
    (tsh,) = [
        o for o in of_type(bundle, "Observation") if o["code"]["coding"][0]["code"] == "3016-3"
    ]
    return RANGE_TEXT_TAG in tsh.get("meta", {}).get("tag", [])


def test_a_point_range_whose_text_differs_is_flagged() -> None:
    root = tree(TSH)
    assert not _flagged(copy.deepcopy(root))  # 0.27-4.2, a real range
    rng = _tsh_range(root)
    one(rng, "hl7:value/hl7:low").set("value", "4.200")
    text = rng.find(f"{{{H}}}text")
    if text is None:
        text = etree.Element(f"{{{H}}}text")
        rng.insert(0, text)
    for child in list(text):
        text.remove(child)
    text.text = "0,27 - 4,2 mUI/L"
    assert _flagged(root)
    text.text = "4,2 mUI/L"  # the text says the same single value: nothing to say
    assert not _flagged(root)


def test_the_pipeline_records_mapping_flags_as_journey_warnings() -> None:
    import os
    from datetime import datetime

    from eai.config import load_config_text
    from eai.pipeline import plan_message
    from eai.store import Cipher, ClaimedMessage

    root = tree(TSH)
    rng = _tsh_range(root)
    one(rng, "hl7:value/hl7:low").set("value", "4.200")
    sub(rng, "text").text = "0,27 - 4,2 mUI/L"
    config = load_config_text(
        """
engine: {data_dir: /tmp/x}
listeners:
  - {name: in, type: mllp, bind: "127.0.0.1:0", test_feed: true}
destinations:
  - {name: fhir, type: fhir-sink}
routes:
  - {name: lab, from: [in], to: [fhir], map: auto}
""",
        "routes.yaml",
        env={},
    )
    cipher = Cipher(os.urandom(32))
    sealed = cipher.seal(data(root))
    claimed = ClaimedMessage(1, "in", datetime(2026, 1, 1), "cda", "", "CDA^11502-2", sealed)
    plan = plan_message(config, cipher, claimed)
    assert [d.destination for d in plan.deliveries] == ["fhir"]
    assert plan.warnings == (
        "mapping crbio: 1 Observation flagged range-text-differs (urn:eai:mapping-flag)",
    )
    assert "4.2" not in " ".join(plan.warnings)


def test_mapping_list_says_which_templates_choose_a_mapping() -> None:
    from click.testing import CliRunner

    from eai.cli import cli

    done = CliRunner().invoke(cli, ["mapping", "list"])
    assert done.exit_code == 0, done.output
    (crbio,) = [line for line in done.output.splitlines() if line.startswith("crbio\t")]
    assert f"templates anywhere {XD_LAB}," in crbio
    (generic,) = [line for line in done.output.splitlines() if line.startswith("cda-document\t")]
    assert "document templates 1.2.250.1.213.1.1.1.1" in generic
