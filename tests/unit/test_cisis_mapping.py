"""CI-SIS ORU/MDM carrying a CDA -> FHIR (cisis-oru-mdm): unpacking, the inner mapping,
replacement and deletion, DMP masking flags, errors."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

import mappings
import tests._fhir_sink  # noqa: F401 - registers the fhir-sink destination (map: routes)
from eai import hl7
from eai.errors import InputError
from mappings._validate import bundle_problems
from mappings.functions.cisis import ACTION_TAG_SYSTEM, DMP_CONFIDENTIALITY, parent_document
from mappings.functions.cisis_source import CisisSource
from tests._cisis import MDM, ORU, build, edit, mdm_with, segments
from tests._paths import CDA

IMG = (CDA / "IMG_CR_IMG_2024.01.xml").read_bytes()
TSH = (CDA / "BIO-CR-BIO_2024.01_TSH_1.xml").read_bytes()


def convert(payload: bytes) -> dict[str, Any]:
    bundle = mappings.convert(payload, "hl7v2")
    assert bundle_problems(bundle, "full") == []
    for entry in bundle["entry"]:
        resource = entry["resource"]
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    return bundle


def document(bundle: dict[str, Any]) -> dict[str, Any]:
    (found,) = [
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "DocumentReference"
    ]
    return found


def action(doc: dict[str, Any]) -> str:
    (tag,) = [t for t in doc["meta"]["tag"] if t["system"] == ACTION_TAG_SYSTEM]
    return str(tag["code"])


def test_default_mapping_for_cisis_messages() -> None:
    assert mappings.default_mapping_for("hl7v2", hl7.parse(ORU)) == "cisis-oru-mdm"
    assert mappings.default_mapping_for("hl7v2", hl7.parse(MDM)) == "cisis-oru-mdm"


def test_oru_maps_the_embedded_crbio_like_the_document_itself() -> None:
    bundle = convert(ORU)
    (doc,) = hl7.embedded_documents(hl7.parse(ORU))
    direct = mappings.convert(doc.data, "cda")
    kinds = sorted(e["resource"]["resourceType"] for e in bundle["entry"])
    assert kinds == sorted(e["resource"]["resourceType"] for e in direct["entry"])
    results = [
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Observation" and "hasMember" not in e["resource"]
    ]
    assert len(results) == 44
    urls = {e["fullUrl"] for e in bundle["entry"]}
    assert urls.isdisjoint({e["fullUrl"] for e in direct["entry"]})
    assert action(document(bundle)) == "new"
    assert document(bundle)["status"] == "current"
    assert mappings.convert(ORU, "hl7v2") == bundle  # deterministic


def test_mdm_t02_with_a_real_cda() -> None:
    bundle = convert(mdm_with(IMG))
    doc = document(bundle)
    assert action(doc) == "new"
    assert doc["type"]["coding"][0]["code"] == "18748-4"
    # the CDA's own relatedDocument (RPLC) stays; masking flags of the message become labels
    assert doc["relatesTo"][0]["code"] == "replaces"
    labels = [c["code"] for s in doc["securityLabel"] for c in s["coding"]]
    assert labels == ["N", "INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX"]
    assert {c["system"] for s in doc["securityLabel"][1:] for c in s["coding"]} == {
        DMP_CONFIDENTIALITY
    }


def test_mdm_t10_replacement_points_at_the_parent_document() -> None:
    payload = mdm_with(TSH, "T10", "RO", "C")
    payload = edit(payload, "TXA", 13, "58131^^1.2.250.2345.3245.13^ISO")
    doc = document(convert(payload))
    assert action(doc) == "replace"
    assert doc["status"] == "current"
    assert doc["relatesTo"] == [
        {
            "code": "replaces",
            "target": {"identifier": {"system": "urn:oid:1.2.250.2345.3245.13", "value": "58131"}},
        }
    ]


def test_oru_replacement_without_txa() -> None:
    payload = edit(edit(ORU, "ORC", 1, "RO"), "OBX", 11, "C", occurrence=1)
    doc = document(convert(payload))
    assert action(doc) == "replace"
    assert "relatesTo" not in doc  # nothing says which document is replaced


@pytest.mark.parametrize(
    "payload",
    [
        mdm_with(TSH, "T04", "CA", "D"),
        mdm_with(TSH, "T11", "CA", "D"),
        edit(edit(ORU, "ORC", 1, "CA"), "OBX", 11, "D", occurrence=1),
    ],
)
def test_deletion_withdraws_the_document(payload: bytes) -> None:
    doc = document(convert(payload))
    assert action(doc) == "delete"
    assert doc["status"] == "entered-in-error"


def test_inconsistent_action_is_refused() -> None:
    with pytest.raises(InputError, match="inconsistent document action"):
        mappings.convert(mdm_with(TSH, "T10", "NW", "F"), "hl7v2")


def test_placeholder_text_maps_from_the_message_without_a_cda() -> None:
    bundle = convert(MDM)
    doc = document(bundle)
    assert action(doc) == "new"
    (fmt,) = [t for t in doc["meta"]["tag"] if t["system"] == "urn:eai:document-format"]
    assert fmt["code"] == "not-cda"
    assert doc["content"][0]["attachment"]["contentType"] == "text/plain"
    source = CisisSource().parse(MDM)
    assert source.carried is not None and "not a CDA" in repr(source)
    assert "PAT" not in repr(source) + repr(source.carried)
    # the Patient is pamfr-adt's, resource for resource
    adt = mappings.load_mapping("pamfr-adt").run(hl7.parse(MDM))
    assert bundle["entry"][0]["resource"] == adt["entry"][0]["resource"]
    # with a real CDA in the same message, there is no such marker nor TXA Practitioner
    with_cda = document(convert(mdm_with(IMG)))
    assert all(t["system"] != "urn:eai:document-format" for t in with_cda["meta"]["tag"])


def test_without_a_cda_the_routing_facts_are_those_of_the_cda_path() -> None:
    from eai._hl7_content import cisis_facts

    assert cisis_facts(hl7.parse(MDM)) == cisis_facts(hl7.parse(mdm_with(IMG)))
    facts = cisis_facts(hl7.parse(MDM))
    assert facts["document_action"] == "new" and facts["DESTDMP"] == "Y"
    assert facts["mss_recipients"] == "1"


@pytest.mark.parametrize(
    ("trigger", "orc", "status", "expected", "doc_status"),
    [("T10", "RO", "C", "replace", "current"), ("T04", "CA", "D", "delete", "entered-in-error")],
)
def test_without_a_cda_replacement_and_deletion(
    trigger: str, orc: str, status: str, expected: str, doc_status: str
) -> None:
    payload = edit(MDM, "MSH", 9, f"MDM^{trigger}^MDM_T02")
    payload = edit(edit(payload, "ORC", 1, orc), "OBX", 11, status, occurrence=1)
    payload = edit(payload, "TXA", 13, "58131^^1.2.250.2345.3245.13^ISO")
    doc = document(convert(payload))
    assert action(doc) == expected
    assert doc["status"] == doc_status
    replaced = [r["target"]["identifier"]["value"] for r in doc.get("relatesTo", [])]
    assert replaced == (["58131"] if expected == "replace" else [])


def test_without_a_cda_other_carriers() -> None:
    pdf = b"%PDF-1.4 compte rendu"
    data = base64.b64encode(pdf).decode()
    as_given = edit(MDM, "OBX", 5, f"^application^pdf^Base64^{data}", occurrence=1)
    doc = document(convert(as_given))
    attachment = doc["content"][0]["attachment"]
    assert attachment["contentType"] == "application/pdf"
    assert base64.b64decode(attachment["data"]) == pdf and attachment["size"] == len(pdf)
    # an ORU whose results are text OBX: OBR/OBX metadata, the text attached
    text_oru = build(
        [s for s in segments(ORU) if not s.startswith("OBX|1|")]
        + ["OBX|13|TX|11502-2^CR d'examens biologiques^LN||ligne 1~ligne 2||||||F|||20230104160500"]
    )
    doc = document(convert(text_oru))
    attachment = doc["content"][0]["attachment"]
    assert base64.b64decode(attachment["data"]) == b"ligne 1\nligne 2"
    assert doc["type"]["coding"][0]["code"] == "11502-2"
    assert doc["date"] == "2023-01-04T16:05:00+01:00"
    # an ORC alone says nothing about a document (eai.hl7.document_action): no action tag
    assert [t["code"] for t in doc["meta"]["tag"]] == ["not-cda"]


def test_no_document_or_an_ed_that_is_not_a_cda_is_refused() -> None:
    no_doc = build([s for s in segments(ORU) if not s.startswith("OBX|1|")])
    with pytest.raises(InputError, match="no document in the message"):
        mappings.convert(no_doc, "hl7v2", "cisis-oru-mdm")
    not_cda = mdm_with(b"<html><body>compte rendu</body></html>")
    with pytest.raises(InputError, match="not a CDA"):
        mappings.convert(not_cda, "hl7v2")
    broken_xml = mdm_with(b"<ClinicalDocument xmlns='urn:hl7-org:v3'><id")
    with pytest.raises(InputError):
        mappings.convert(broken_xml, "hl7v2")
    binary = mdm_with(bytes(range(1, 40)))
    with pytest.raises(InputError, match="does not decode to an XML document"):
        mappings.convert(binary, "hl7v2")
    bad = edit(MDM, "OBX", 5, "^text^XML^Base64^not*base64", occurrence=1)
    with pytest.raises(InputError, match="not valid base64"):
        mappings.convert(bad, "hl7v2")


def test_parent_document_forms() -> None:
    oid_only = hl7.parse(edit(MDM, "TXA", 13, "1.2.250.2345.3245.13.58131"))
    assert parent_document(oid_only) == {
        "system": "urn:ietf:rfc:3986",
        "value": "urn:oid:1.2.250.2345.3245.13.58131",
    }
    assert parent_document(hl7.parse(MDM)) is None


def test_source_kind_paths() -> None:
    source = CisisSource()
    document = source.from_routable(hl7.parse(ORU))
    assert document is not None and "PAT" not in repr(document)
    assert source.from_routable(object()) is None
    assert source.message_type(document) == "ORU^R01"
    assert source.compile_value("MSH-9.2", None)(document, None) == "R01"
    assert source.compile_exists("ORC", None)(document, None)
    reader, kind = source.compile_items("entry:Specimen", None)
    assert len(reader(document, None)) == 4
    with pytest.raises(ValueError, match="cisis_copy"):
        source.compile_value("PID-5.1", kind)
    with pytest.raises(ValueError, match="cisis_copy"):
        source.compile_exists("PID", kind)
    with pytest.raises(ValueError, match="cisis_copy"):
        source.compile_items("OBX", kind)
    segs, _ = source.compile_items("OBX", None)
    assert len(segs(document, None)) == 12


PIPELINE_ROUTES = """
engine: {data_dir: /tmp/x}
listeners:
  - {name: in, type: mllp, bind: "127.0.0.1:0", test_feed: true}   # national test INS
destinations:
  - {name: dmp, type: fhir-sink}
  - {name: patient-mss, type: mllp, host: 127.0.0.1, port: 2}
routes:
  - name: to-dmp
    from: [in]
    when: {all: [{fact: DESTDMP, equals: "Y"}, {fact: document_action, in: [new, replace]}]}
    to: [dmp]
    map: auto
  - name: to-patient
    from: [in]
    when: {fact: DESTMSSANTEPAT, equals: "Y"}
    to: [patient-mss]
"""


def test_pipeline_routes_on_facts_and_maps_the_embedded_cda() -> None:
    import json
    import os
    from datetime import datetime

    from eai.config import load_config_text
    from eai.pipeline import plan_message
    from eai.store import Cipher, ClaimedMessage

    cipher = Cipher(os.urandom(32))
    config = load_config_text(PIPELINE_ROUTES, "routes.yaml", env={})

    def plan(payload: bytes) -> Any:
        claimed = ClaimedMessage(
            1, "in", datetime(2026, 1, 1), "hl7v2", "", "ORU^R01", cipher.seal(payload)
        )
        return plan_message(config, cipher, claimed)

    oru = plan(ORU)
    by_dest = {d.destination: d for d in oru.deliveries}
    assert set(by_dest) == {"dmp", "patient-mss"}
    assert by_dest["patient-mss"].payload is None  # forwarded as received
    sealed = by_dest["dmp"].payload
    assert sealed is not None
    bundle = json.loads(cipher.open(sealed).decode("utf-8"))
    assert action(document(bundle)) == "new"
    deletion = plan(edit(edit(ORU, "ORC", 1, "CA"), "OBX", 11, "D", occurrence=1))
    assert [d.destination for d in deletion.deliveries] == ["patient-mss"]
    assert "279035121518989" not in repr(oru) + oru.reason
