"""Every mapping shipped loads, every case of every mappings/*.tests.yaml passes,
and every HL7 v2 fixture that a mapping takes gives valid FHIR R4 (fhir.resources R4B)."""

import pytest
from fhir.resources.R4B import get_fhir_model_class

import mappings
from eai.errors import InputError
from mappings._validate import bundle_problems
from tests._paths import HL7V2


def _cases():
    for path in mappings.tests_files():
        tests = mappings.read_tests(path)
        for index, case in enumerate(tests.cases):
            yield pytest.param(path, index, id=f"{tests.mapping}: {case.name}")


@pytest.mark.parametrize("name", mappings.available_mappings())
def test_mapping_loads(name):
    compiled = mappings.load_mapping(name)
    assert compiled.name == name
    assert mappings.tests_files(name), f"{name} has no {name}.tests.yaml beside it"


@pytest.mark.parametrize(("path", "index"), list(_cases()))
def test_mapping_case(path, index):
    result = mappings.run_mapping_case(path, index)
    assert result.passed, "\n" + str(result)


FIXTURES = sorted(p for p in HL7V2.iterdir() if p.suffix in (".er7", ".hl7"))


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.name)
def test_every_fixture_maps_to_valid_r4b(fixture):
    payload = fixture.read_bytes()
    bundle = mappings.convert(payload, "hl7v2")
    get_fhir_model_class("Bundle").model_validate(bundle)
    for entry in bundle["entry"]:
        resource = entry["resource"]
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    assert bundle_problems(bundle, "light") == []
    assert bundle_problems(bundle, "full") == []


def test_the_mdm_placeholder_fixture_maps_from_its_hl7_metadata():
    # The national MDM example carries a placeholder text where the CDA should be:
    # a DocumentReference from TXA/OBX, marked as not a CDA, and the Patient of PID.
    bundle = mappings.convert((HL7V2 / "mdm_t02_crimg_init.er7").read_bytes(), "hl7v2")
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds == ["Patient", "Practitioner", "DocumentReference"]
    patient, author, doc = (e["resource"] for e in bundle["entry"])
    assert {"system": "urn:eai:document-format", "code": "not-cda"}.items() <= doc["meta"]["tag"][
        0
    ].items()
    assert {"system": "urn:eai:document-action", "code": "new"} in doc["meta"]["tag"]
    assert doc["masterIdentifier"] == {
        "system": "urn:ietf:rfc:3986",
        "value": "urn:oid:1.2.250.1.71.4.2.2.120456789.71024000081",
    }
    assert doc["type"]["coding"][0]["code"] == "18748-4"
    assert (doc["status"], doc["docStatus"]) == ("current", "final")
    attachment = doc["content"][0]["attachment"]
    assert attachment["contentType"] == "text/plain"
    assert (attachment["size"], attachment["hash"]) == (39, "TgQdwzyhvIEWSSx+3jqB6AJNPXg=")
    assert doc["subject"]["reference"] == bundle["entry"][0]["fullUrl"]
    assert doc["authenticator"]["reference"] == bundle["entry"][1]["fullUrl"]
    assert author["identifier"] == [{"value": "801234564895"}]
    assert patient["identifier"][0]["value"] == "279035121518989"
    labels = [c["code"] for s in doc["securityLabel"] for c in s["coding"]]
    assert labels == ["INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX"]


def test_an_ed_that_is_not_a_cda_is_still_refused_in_one_line():
    oru = (HL7V2 / "oru_r01_crbio_init.hl7").read_bytes()
    start = oru.index(b"^Base64^") + len(b"^Base64^")
    end = oru.index(b"|", start)
    for data, reason in [
        (b"not*base64", "is not valid base64"),
        (b"AAECAwQFBgcICQ==", "does not decode to an XML document"),  # binary bytes
        (b"PGh0bWw+PC9odG1sPg==", "not a CDA"),  # <html></html>
    ]:
        with pytest.raises(InputError) as info:
            mappings.convert(oru[:start] + data + oru[end:], "hl7v2")
        assert reason in info.value.reason
        assert "\n" not in str(info.value)


def test_the_adt_fixtures_all_map():
    adt = [p for p in FIXTURES if p.name.startswith("pamfr_")]
    assert len(adt) >= 3
    for fixture in adt:
        bundle = mappings.convert(fixture.read_bytes(), "hl7v2")
        kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
        consents = ["Consent", "Consent"] if b"\nZFA|" in fixture.read_bytes() else []
        assert kinds == ["Patient", "Encounter", "Encounter", *consents], fixture.name


def test_forcing_the_adt_mapping_on_a_cda_carrier_still_gives_valid_fhir():
    payload = (HL7V2 / "oru_r01_crbio_init.hl7").read_bytes()
    bundle = mappings.convert(payload, "hl7v2", "pamfr-adt")
    assert bundle_problems(bundle, "full") == []
