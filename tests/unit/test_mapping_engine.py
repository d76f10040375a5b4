"""The mapping engine: file:line errors, HL7 v2 source paths, FSH soft indexing,
transforms, conditions, deterministic urn:uuid, and the two FHIR checks."""

import copy
import json
from zoneinfo import ZoneInfo

import pytest

import mappings
from eai import hl7
from eai.errors import InputError
from mappings._fhirmodel import resource_model
from mappings._fhirpath import compile_target
from mappings._transforms import hl7_date, hl7_datetime
from mappings._validate import bundle_problems
from tests._paths import HL7V2

A01 = (HL7V2 / "pamfr_a01_admission.er7").read_bytes()


def _patient(compiled, payload: bytes = A01) -> dict:
    return compiled.run(hl7.parse(payload))["entry"][0]["resource"]


# -- loading: every problem with file:line:column -----------------------------


# -- HL7 v2 source paths -------------------------------------------------------


# -- FHIR element paths: FSH soft indexing -----------------------------------


def test_soft_indexing_plus_equals_and_pending():
    target = {
        p: compile_target(resource_model("Patient"), p)
        for p in (
            "identifier[+].system",
            "identifier[=].value",
            "name[0].family",
            "name.given",
            "extension[url=http://x/y].valueCode",
            "active",
        )
    }
    resource: dict = {}
    pending: set[str] = set()
    target["identifier[+].system"].write(resource, "s1", pending)
    target["identifier[=].value"].write(resource, "v1", pending)
    # an empty [+] is pending: the next [=] makes the new element
    target["identifier[+].system"].mark_pending(pending)
    target["identifier[=].value"].write(resource, "v2", pending)
    target["name[0].family"].write(resource, "F", pending)
    target["name.given"].write(resource, ["A", "B"], pending)
    target["extension[url=http://x/y].valueCode"].write(resource, "c", pending)
    target["extension[url=http://x/y].valueCode"].write(resource, "d", pending)
    target["active"].write(resource, "Y", pending)
    assert resource == {
        "identifier": [{"system": "s1", "value": "v1"}, {"value": "v2"}],
        "name": [{"family": "F", "given": ["A", "B"]}],
        "extension": [{"url": "http://x/y", "valueCode": "d"}],
        "active": True,
    }


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("gender[+]", "does not repeat"),
        ("name[x]", "use [+], [=], [N]"),
        ("gender.code", "is a primitive"),
        ("identifier[url=x].value", "selects extensions"),
    ],
)
def test_bad_element_paths(path, problem):
    with pytest.raises(ValueError, match=problem.replace("[", r"\[").replace("+", r"\+")):
        compile_target(resource_model("Patient"), path)


# -- transforms ---------------------------------------------------------------


def test_dates_and_times():
    paris = ZoneInfo("Europe/Paris")
    assert hl7_date("19790328") == "1979-03-28"
    assert hl7_date("197903") == "1979-03"
    assert hl7_date("19790328101500") == "1979-03-28"
    assert hl7_datetime("20240306110000", paris) == "2024-03-06T11:00:00+01:00"
    assert hl7_datetime("202407071130", paris) == "2024-07-07T11:30:00+02:00"
    assert hl7_datetime("20240306110000+0000", paris) == "2024-03-06T11:00:00+00:00"
    assert hl7_datetime("20240306", paris) == "2024-03-06"
    for bad in ("1979XX28", "19790230", ""):
        with pytest.raises(ValueError):
            hl7_date(bad)


# -- the Bundle ----------------------------------------------------------------


def test_bundle_urns_are_deterministic_and_references_resolve():
    first = mappings.convert(A01, "hl7v2")
    again = mappings.convert(A01, "hl7v2")
    assert first == again
    other = mappings.convert(A01.replace(b"|3975|", b"|3976|"), "hl7v2")
    urls = {e["fullUrl"] for e in first["entry"]}
    assert urls.isdisjoint({e["fullUrl"] for e in other["entry"]})
    refs = [e["resource"].get("subject", e["resource"].get("patient")) for e in first["entry"][1:]]
    refs = [r["reference"] for r in refs]  # Encounter.subject, Consent.patient (ZFA)
    assert set(refs) == {first["entry"][0]["fullUrl"]}


def test_default_mapping_and_errors():
    msg = hl7.parse(A01)
    assert mappings.default_mapping_for("hl7v2", msg) == "pamfr-adt"
    assert mappings.default_mapping_for("cda", msg) is None
    ack = (HL7V2 / "oru_ack_example.hl7").read_bytes()
    assert mappings.default_mapping_for("hl7v2", hl7.parse(ack)) == "hl7-ack"
    query = b"MSH|^~\\&|A|B|C|D|20260101||QRY^A19|1|P|2.5\r"
    with pytest.raises(InputError, match="no mapping takes QRY"):
        mappings.convert(query, "hl7v2")
    with pytest.raises(InputError, match="reads hl7v2, not cda"):
        mappings.convert(b"<x/>", "cda", "pamfr-adt")


# -- the two FHIR checks agree ---------------------------------------------------


def _broken(bundle: dict) -> list[dict]:
    out = []
    cases = [
        lambda p: p.__setitem__("birthDate", "28/03/1979"),
        lambda p: p.__setitem__("gender", ["female"]),
        lambda p: p.__setitem__("unknownThing", "x"),
        lambda p: p["extension"][0].pop("url"),
        lambda p: p.__setitem__("deceasedDateTime", "2020-01-01"),
        lambda p: p.__setitem__("active", "yes"),
        lambda p: p["identifier"][0].__setitem__("period", {"start": "2024-13-01"}),
    ]
    for change in cases:
        broken = copy.deepcopy(bundle)
        change(broken["entry"][0]["resource"])
        out.append(broken)
    broken = copy.deepcopy(bundle)
    broken["entry"][1]["resource"].pop("status")
    out.append(broken)
    broken = copy.deepcopy(bundle)
    broken["entry"][1]["resource"]["subject"]["reference"] = (
        "urn:uuid:" + "0" * 8 + "-0000-0000-0000-" + "0" * 12
    )
    out.append(broken)
    return out


def test_the_light_check_finds_every_broken_bundle_the_full_one_finds():
    bundle = mappings.convert(A01, "hl7v2")
    assert bundle_problems(bundle, "full") == bundle_problems(bundle, "light") == []
    missed_by_full = 0
    for broken in _broken(bundle):
        full, light = bundle_problems(broken, "full"), bundle_problems(broken, "light")
        assert light, json.dumps(broken["entry"][0]["resource"])[:200]
        missed_by_full += not full
    # fhir.resources coerces "yes" to a boolean (pydantic lax mode); FHIR JSON does not
    assert missed_by_full == 1


def test_problems_never_show_values():
    bundle = mappings.convert(A01, "hl7v2")
    broken = copy.deepcopy(bundle)
    broken["entry"][0]["resource"]["birthDate"] = "PAT-TROIS"
    for level in ("full", "light"):
        problems = bundle_problems(broken, level)
        assert problems and not any("PAT-TROIS" in p for p in problems)


# -- tests beside a mapping: a failure shows a readable diff --------------------
