"""CDA documents -> FHIR through the shipped mappings (cda-document, crbio): every national
example, R4B validity, result counts, attachment hash and size, self-presenting form."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from fhir.resources.R4B import get_fhir_model_class
from lxml import etree

import mappings
from eai.cda import parse_cda
from eai.errors import InputError
from mappings._loader import MAPPINGS_DIR
from mappings._validate import bundle_problems
from mappings.functions.cda import (
    GROUPS,
    RESULTS,
    SPECIMENS,
    cda_ii_system,
    cda_ii_value,
    cda_instant,
    document_bytes,
)
from mappings.functions.cda_document import attachment_of, clinical_document
from mappings.functions.cda_lab import result_observations
from mappings.functions.cda_source import CdaSource
from tests._paths import CDA

FIXTURES = sorted(CDA.glob("*.xml"))
TSH = CDA / "BIO-CR-BIO_2024.01_TSH_1.xml"
EXPECTED = {  # default mapping, result Observations (= CDA result entries), all resources
    "BIO-CR-BIO_2024.01_CR-2nde-intention-PDF.xml": ("crbio", 1, 8),
    "BIO-CR-BIO_2024.01_Electrophorese.xml": ("crbio", 44, 63),
    "BIO-CR-BIO_2024.01_TSH_1.xml": ("crbio", 2, 9),
    "CANCER-FRCP_2022.01_Appareil.xml": ("cda-document", 0, 6),
    "IMG_CR_IMG_2024.01.xml": ("cda-document", 0, 6),
    "TLM-CR_2022.01.xml": ("cda-document", 0, 6),
}
NAMES = ("PAT-TROIS", "DOMINIQUE", "279035121518989")


def convert(payload: bytes, mapping: str | None = None) -> dict[str, Any]:
    return mappings.convert(payload, "cda", mapping)


def resources(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def test_every_fixture_is_expected() -> None:
    assert {p.name for p in FIXTURES} == set(EXPECTED)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_every_fixture_maps_to_valid_r4b(path: Path) -> None:
    payload = path.read_bytes()
    mapping, count, total = EXPECTED[path.name]
    assert mappings.default_mapping_for("cda", parse_cda(payload, None).routable) == mapping
    bundle = convert(payload)
    get_fhir_model_class("Bundle").model_validate(bundle)
    for entry in bundle["entry"]:
        resource = entry["resource"]
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    assert bundle_problems(bundle, "full") == []
    assert len(bundle["entry"]) == total
    results = [o for o in resources(bundle, "Observation") if "hasMember" not in o]
    doc = clinical_document(etree.fromstring(payload))
    assert len(results) == len(result_observations(doc)) == count
    (patient,) = resources(bundle, "Patient")
    assert patient["identifier"][0]["system"] == "urn:oid:1.2.250.1.213.1.4.10"
    assert patient["identifier"][0]["value"] == "279035121518989"
    (document,) = resources(bundle, "DocumentReference")
    assert document["subject"] == {"reference": bundle["entry"][0]["fullUrl"]}


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_attachment_is_the_exact_document(path: Path) -> None:
    payload = path.read_bytes()
    (document,) = resources(convert(payload), "DocumentReference")
    attachment = document["content"][0]["attachment"]
    assert attachment["size"] == len(payload)
    assert attachment["hash"] == base64.b64encode(hashlib.sha1(payload).digest()).decode()
    assert base64.b64decode(attachment["data"]) == payload
    assert attachment["contentType"] == "text/xml"


def test_attachment_of() -> None:
    # FHIR R4 Attachment.hash example: SHA-1 of "Hello World", base64
    assert attachment_of(b"Hello World") == {"size": 11, "hash": "Ck1VqNd45QIvq3AZd8XYQLvEhtA="}


def self_presenting(payload: bytes) -> bytes:
    """The document wrapped as a self-presenting CDA: an XSL stylesheet root holding it."""
    text = payload.decode("utf-8")
    start = text.index("<ClinicalDocument")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<?xml-stylesheet type="text/xsl" href="#"?>\n'
        '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">\n'
        '  <xsl:output method="html"/>\n'
        '  <xsl:template match="/"><html><body>CR</body></html></xsl:template>\n'
        f"  {text[start:]}\n"
        "</xsl:stylesheet>\n"
    ).encode()


def test_self_presenting_document_maps_like_the_plain_one() -> None:
    plain = TSH.read_bytes()
    wrapped = self_presenting(plain)
    assert mappings.default_mapping_for("cda", parse_cda(wrapped, None).routable) == "crbio"
    a, b = convert(plain), convert(wrapped)
    assert bundle_problems(b, "full") == []

    def strip(bundle: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for entry in bundle["entry"]:
            resource = dict(entry["resource"])
            if resource["resourceType"] == "DocumentReference":
                resource.pop("content")
            out.append(resource)
        return out

    assert [e["resource"]["resourceType"] for e in a["entry"]] == [
        e["resource"]["resourceType"] for e in b["entry"]
    ]
    same_refs = re.sub(r"urn:uuid:[0-9a-f-]+", "U", str(strip(a)))
    assert same_refs == re.sub(r"urn:uuid:[0-9a-f-]+", "U", str(strip(b)))
    (document,) = resources(b, "DocumentReference")
    attachment = document["content"][0]["attachment"]
    assert attachment["size"] == len(wrapped)  # the hash covers the bytes received
    assert attachment["hash"] == base64.b64encode(hashlib.sha1(wrapped).digest()).decode()


def test_crbio_starts_with_the_cda_document_resources() -> None:
    """crbio.yaml repeats cda-document.yaml's resources: they must not drift apart."""
    generic = yaml.safe_load((MAPPINGS_DIR / "cda-document.yaml").read_text(encoding="utf-8"))
    lab = yaml.safe_load((MAPPINGS_DIR / "crbio.yaml").read_text(encoding="utf-8"))
    assert lab["resources"][: len(generic["resources"])] == generic["resources"]
    assert lab["tables"] == generic["tables"]
    extra = lab["resources"][len(generic["resources"]) :]
    assert [r["id"] for r in extra] == ["specimen", "lab_group", "lab_result", "report"]
    # crbio_results fills the declared resources: their for_each must be its XPaths
    assert [r.get("for_each") for r in extra] == [SPECIMENS, GROUPS, RESULTS, None]


@pytest.mark.parametrize(
    "payload",
    [
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b'<ClinicalDocument xmlns="urn:hl7-org:v3">&e;</ClinicalDocument>',
        b"<html><body>not a CDA</body></html>",
        b"<ClinicalDocument",
    ],
)
def test_hostile_or_foreign_xml_is_refused(payload: bytes) -> None:
    with pytest.raises(InputError) as info:
        convert(payload, "cda-document")
    assert "passwd" not in info.value.reason


def test_errors_and_values_never_hold_patient_data() -> None:
    broken = TSH.read_bytes().replace(b'value="19790328"', b'value="1979XX28"')
    with pytest.raises(InputError) as info:
        convert(broken, "crbio")
    assert "birthTime" in info.value.reason and "crbio.yaml:" in info.value.reason
    assert not any(n in info.value.reason for n in NAMES + ("1979XX28",))
    assert "bytes" in repr(CdaSource().parse(TSH.read_bytes()))
    assert "PAT" not in repr(CdaSource().parse(TSH.read_bytes()))


@pytest.mark.parametrize(
    ("value", "system", "expected"),
    [
        (["1.2.250.1.71.4.2.1", "801234534765"], "urn:oid:1.2.250.1.71.4.2.1", "801234534765"),
        (["1.2.250.1.213.1.1.9", ""], "urn:ietf:rfc:3986", "urn:oid:1.2.250.1.213.1.1.9"),
        (
            ["90E1C8EC-F951-4B26-A305-A34848818DD6", ""],
            "urn:ietf:rfc:3986",
            "urn:uuid:90e1c8ec-f951-4b26-a305-a34848818dd6",
        ),
        (["", ""], "", ""),
    ],
)
def test_identifier_transforms(value: list[str], system: str, expected: str) -> None:
    assert cda_ii_system(value) == system
    assert cda_ii_value(value) == expected


def test_instant_and_document_bytes() -> None:
    assert cda_instant("20210401171000+0100") == "2021-04-01T17:10:00+01:00"
    assert cda_instant("20210401") == ""
    parsed = CdaSource().parse(TSH.read_bytes())
    assert document_bytes(parsed) == TSH.read_bytes()
    # without the received bytes (a bare element): the serialised tree
    assert document_bytes(parsed.element).startswith(b"<?xml")
    with pytest.raises(ValueError):
        document_bytes("not a document")


def test_source_paths_are_checked_at_load_time() -> None:
    source = CdaSource()
    with pytest.raises(ValueError, match="invalid XPath"):
        source.compile_value("hl7:code/@", None)
    with pytest.raises(ValueError, match="empty XPath"):
        source.compile_items(" ", None)
    doc = source.parse(TSH.read_bytes())
    assert source.message_type(doc) == "CDA^11502-2"
    assert source.compile_value("count(hl7:recordTarget)", None)(doc, None) == "1"
    assert source.compile_value("hl7:nothing", None)(doc, None) == ""
    assert source.compile_exists("hl7:title", None)(doc, None)
    assert not source.compile_exists("hl7:nothing", None)(doc, None)
    assert not source.compile_exists("boolean(hl7:nothing)", None)(doc, None)
    assert source.compile_items("hl7:title/text()", None)[0](doc, None) == []
    assert source.compile_items("count(hl7:id)", None)[0](doc, None) == []
    assert source.from_routable(parse_cda(TSH.read_bytes(), None).routable) is None
