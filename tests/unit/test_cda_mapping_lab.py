"""CR-BIO results -> Observation / Specimen / DiagnosticReport (mappings.functions.cda_lab)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from lxml import etree

from mappings.functions.cda_lab import NO_LOINC_TAG, LabReport, lab_report, result_observations
from mappings.functions.cda_types import (
    codeable_concept,
    identifier,
    quantity,
    system_uri,
    ts_date,
    ts_datetime,
    ts_instant,
)
from tests._paths import CDA

CRBIO = sorted(CDA.glob("BIO-*.xml"))
OTHERS = sorted(set(CDA.glob("*.xml")) - set(CRBIO))
TSH = CDA / "BIO-CR-BIO_2024.01_TSH_1.xml"
ELECTRO = CDA / "BIO-CR-BIO_2024.01_Electrophorese.xml"
H = "urn:hl7-org:v3"


def urls() -> Callable[[], str]:
    n = itertools.count(1)
    return lambda: f"urn:uuid:00000000-0000-4000-8000-{next(n):012d}"


def build(path: Any) -> tuple[etree._Element, LabReport]:
    doc = etree.parse(str(path)).getroot()
    return doc, lab_report(doc, urls(), subject={"reference": "urn:uuid:patient"})


def of_type(report: LabReport, kind: str) -> list[dict[str, Any]]:
    return [r for _, r in report.resources if r["resourceType"] == kind]


def results(report: LabReport) -> list[dict[str, Any]]:
    return [r for r in of_type(report, "Observation") if "hasMember" not in r]


@pytest.mark.parametrize("path", CRBIO + OTHERS, ids=lambda p: p.name)
def test_every_resource_loads_into_r4b(path: Any) -> None:
    _, report = build(path)
    for _, resource in report.resources:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)


@pytest.mark.parametrize(
    ("name", "count", "groups", "specimens"),
    [
        ("BIO-CR-BIO_2024.01_TSH_1.xml", 2, 0, 0),
        ("BIO-CR-BIO_2024.01_Electrophorese.xml", 44, 8, 4),
        ("BIO-CR-BIO_2024.01_CR-2nde-intention-PDF.xml", 1, 0, 0),
    ],
)
def test_one_observation_per_result_entry(
    name: str, count: int, groups: int, specimens: int
) -> None:
    doc, report = build(CDA / name)
    assert len(result_observations(doc)) == count  # the CDA's result entries
    assert len(results(report)) == report.result_count == count
    assert report.group_count == groups
    assert len(of_type(report, "Specimen")) == specimens


@pytest.mark.parametrize("path", OTHERS, ids=lambda p: p.name)
def test_documents_without_lab_results_give_an_empty_report(path: Any) -> None:
    _, report = build(path)
    assert report.result_count == 0 and "result" not in report.report


def test_tsh_values() -> None:
    _, report = build(TSH)
    tsh, ft4 = results(report)
    assert tsh["code"]["coding"] == [
        {
            "system": "http://loinc.org",
            "code": "3016-3",
            "display": "Thyréostimuline [Arbitraire/Volume] Sérum/Plasma ; Numérique",
        }
    ]
    assert tsh["code"]["text"] == "Thyréostimuline (TSH)"  # resolved from the narrative
    assert tsh["valueQuantity"] == {
        "value": 1.95,
        "unit": "m[IU]/L",
        "system": "http://unitsofmeasure.org",
        "code": "m[IU]/L",
    }
    (rng,) = tsh["referenceRange"]
    assert (rng["low"]["value"], rng["high"]["value"]) == (0.27, 4.2)
    assert rng["low"]["code"] == rng["high"]["code"] == "m[IU]/L"
    assert rng["type"]["coding"][0]["code"] == "normal"
    assert tsh["interpretation"][0]["coding"][0]["code"] == "N"
    assert tsh["effectiveDateTime"] == "2014-04-02T14:55:21+02:00"
    assert tsh["status"] == "final" and tsh["subject"] == {"reference": "urn:uuid:patient"}
    assert ft4["code"]["coding"][0]["code"] == "3024-7"
    assert ft4["interpretation"][0]["coding"][0]["code"] == "L"
    report_ = report.report
    assert report_["code"]["coding"][0]["code"] == "11502-2"
    assert report_["status"] == "final"
    assert len(report_["result"]) == 2
    assert report.resources[-1][1] is report_


def test_batteries_keep_grouping_and_specimens() -> None:
    _, report = build(ELECTRO)
    by_url = {url: r for url, r in report.resources}
    groups = [r for r in of_type(report, "Observation") if "hasMember" in r]
    hemogram = next(g for g in groups if g["code"].get("coding", [{}])[0].get("code") == "58410-2")
    members = [by_url[m["reference"]] for m in hemogram["hasMember"]]
    assert len(members) == 16 and all("hasMember" not in m for m in members)
    assert hemogram["note"] == [{"text": "Interprétation : Anisocytose"}]
    # isolate cluster -> antibiogram battery -> MIC results, on the isolate's specimen
    isolate = next(g for g in groups if "112283007" in str(g["code"]))
    nested = [by_url[m["reference"]] for m in isolate["hasMember"]]
    antibiogram = next(n for n in nested if "hasMember" in n)
    assert antibiogram["code"]["coding"][0]["code"] == "18769-0"
    specimen = by_url[isolate["specimen"]["reference"]]
    assert specimen["type"]["coding"][0]["code"] == "112283007"
    parent = by_url[specimen["parent"][0]["reference"]]
    assert parent["type"]["coding"][0] == {
        "system": "http://terminology.hl7.org/CodeSystem/v2-0487",
        "code": "UR",
        "display": "Urine",
    }
    assert parent["receivedTime"] == "2024-01-04T07:52:00+01:00"
    mics = [by_url[m["reference"]] for m in antibiogram["hasMember"]]
    assert mics[0]["valueQuantity"]["comparator"] == ">="
    assert all(m["specimen"] == isolate["specimen"] for m in mics)
    # the report lists top-level items only
    tops = {r["reference"] for r in report.report["result"]}
    member_urls = {m["reference"] for g in groups for m in g["hasMember"]}
    assert not tops & member_urls


def _observation(body: str) -> etree._Element:
    return etree.fromstring(
        f'<ClinicalDocument xmlns="{H}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<component><structuredBody><component><section>"
        '<entry><templateId root="1.3.6.1.4.1.19376.1.3.1"/><act><statusCode code="active"/>'
        '<entryRelationship typeCode="COMP"><observation classCode="OBS" moodCode="EVN">'
        f'<templateId root="1.3.6.1.4.1.19376.1.3.1.6"/>{body}</observation>'
        "</entryRelationship></act></entry></section></component></structuredBody></component>"
        "</ClinicalDocument>"
    )


@pytest.mark.parametrize(
    ("body", "key", "expected"),
    [
        ('<value xsi:type="ST">trouble</value>', "valueString", "trouble"),
        ('<value xsi:type="INT" value="3"/>', "valueInteger", 3),
        ('<value xsi:type="REAL" value="2.5"/>', "valueQuantity", {"value": 2.5}),
        ('<value xsi:type="BL" value="true"/>', "valueBoolean", True),
        (
            '<value xsi:type="IVL_PQ"><low value="1" unit="g/L"/>'
            '<high value="2" unit="g/L"/></value>',
            "valueRange",
            {
                "low": {
                    "value": 1,
                    "unit": "g/L",
                    "system": "http://unitsofmeasure.org",
                    "code": "g/L",
                },
                "high": {
                    "value": 2,
                    "unit": "g/L",
                    "system": "http://unitsofmeasure.org",
                    "code": "g/L",
                },
            },
        ),
        (
            '<value xsi:type="CD" code="260385009" codeSystem="2.16.840.1.113883.6.96"/>',
            "valueCodeableConcept",
            {"coding": [{"system": "http://snomed.info/sct", "code": "260385009"}]},
        ),
        (
            '<value xsi:type="PQ" nullFlavor="UNK"/>',
            "dataAbsentReason",
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                        "code": "unknown",
                    }
                ],
                "text": "UNK",
            },
        ),
    ],
)
def test_value_types(body: str, key: str, expected: Any) -> None:
    doc = _observation(f'<code code="X1" codeSystem="1.2.250.1.999"/>{body}')
    report = lab_report(doc, urls())
    (obs,) = results(report)
    assert obs[key] == expected
    get_fhir_model_class("Observation").model_validate(obs)
    assert report.report["status"] == "partial"  # the act is still active


def test_result_without_loinc_keeps_local_code_and_is_flagged() -> None:
    doc = _observation(
        '<code code="GLY-LOC" codeSystem="1.2.250.1.999.1" displayName="Glycémie labo"/>'
        '<statusCode code="completed"/><value xsi:type="PQ" value="5.1" unit="mmol/L"/>'
    )
    (obs,) = results(lab_report(doc, urls()))
    assert obs["code"]["coding"] == [
        {"system": "urn:oid:1.2.250.1.999.1", "code": "GLY-LOC", "display": "Glycémie labo"}
    ]
    assert obs["meta"]["tag"] == [NO_LOINC_TAG]
    loinc = _observation('<code code="2345-7" codeSystem="2.16.840.1.113883.6.1"/>')
    (with_loinc,) = results(lab_report(loinc, urls()))
    assert "meta" not in with_loinc


@pytest.mark.parametrize(
    ("value", "date", "datetime_", "instant"),
    [
        ("19790328", "1979-03-28", "1979-03-28", ""),
        ("197903", "1979-03", "1979-03", ""),
        ("20240104160527+0100", "2024-01-04", "2024-01-04T16:05:27+01:00", "same"),
        ("202401040735+0100", "2024-01-04", "2024-01-04T07:35:00+01:00", "same"),
        ("20240704073500", "2024-07-04", "2024-07-04T07:35:00+02:00", "same"),  # Paris, summer
        ("20240104073500.25-0500", "2024-01-04", "2024-01-04T07:35:00.25-05:00", "same"),
        ("garbage", "", "", ""),
        ("20241304", "2024-13-04", "2024-13-04", ""),  # not checked: FHIR validation refuses
    ],
)
def test_ts(value: str, date: str, datetime_: str, instant: str) -> None:
    assert ts_date(value) == date
    assert ts_datetime(value) == datetime_
    assert ts_instant(value) == (datetime_ if instant == "same" else instant)


def test_identifier_forms() -> None:
    def ii(**attrs: str) -> Any:
        return identifier(etree.Element(f"{{{H}}}id", attrs))

    assert ii(root="1.2.250.1.213.1.4.10", extension="279035121518989") == {
        "system": "urn:oid:1.2.250.1.213.1.4.10",
        "value": "279035121518989",
    }
    assert ii(root="1.2.250.1.213.1.1.9") == {
        "system": "urn:ietf:rfc:3986",
        "value": "urn:oid:1.2.250.1.213.1.1.9",
    }
    assert ii(root="770B0DC2-A6B8-468E-8432-632B18D35F68") == {
        "system": "urn:ietf:rfc:3986",
        "value": "urn:uuid:770b0dc2-a6b8-468e-8432-632b18d35f68",
    }
    assert ii(nullFlavor="UNK") is None


def test_codes_and_quantities() -> None:
    assert system_uri("2.16.840.1.113883.6.1") == "http://loinc.org"
    assert system_uri("1.2.3") == "urn:oid:1.2.3"
    assert codeable_concept(etree.Element(f"{{{H}}}code", nullFlavor="NI")) is None
    assert quantity(etree.Element(f"{{{H}}}value", value="abc")) is None
    assert quantity(etree.Element(f"{{{H}}}value", value="7", unit="1")) == {"value": 7}


@pytest.mark.parametrize("path", CRBIO, ids=lambda p: p.name)
def test_declared_elements_match_the_mapping_xpaths(path: Any) -> None:
    """The one-pass scan of crbio_results selects what crbio.yaml's for_each XPaths select."""
    from mappings.functions.cda import GROUPS, RESULTS, SPECIMENS
    from mappings.functions.cda_lab import declared_elements
    from mappings.functions.cda_types import NS

    doc = etree.parse(str(path)).getroot()
    found = declared_elements(doc)
    assert found.results == doc.xpath(RESULTS, namespaces=NS)
    assert found.groups == doc.xpath(GROUPS, namespaces=NS)
    assert found.specimens == doc.xpath(SPECIMENS, namespaces=NS)
