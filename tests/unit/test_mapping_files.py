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


# Fixtures no mapping takes, and the clear refusal each one gets instead of FHIR:
# the national MDM example carries a placeholder text where the CDA should be.
REFUSED = {
    "mdm_t02_crimg_init.er7": "does not decode to an XML document",
}


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.name)
def test_every_fixture_maps_to_valid_r4b_or_is_refused_clearly(fixture):
    payload = fixture.read_bytes()
    if fixture.name in REFUSED:
        with pytest.raises(InputError) as info:
            mappings.convert(payload, "hl7v2")
        assert REFUSED[fixture.name] in info.value.reason
        return
    bundle = mappings.convert(payload, "hl7v2")
    get_fhir_model_class("Bundle").model_validate(bundle)
    for entry in bundle["entry"]:
        resource = entry["resource"]
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    assert bundle_problems(bundle, "light") == []
    assert bundle_problems(bundle, "full") == []


def test_the_adt_fixtures_all_map():
    adt = [p for p in FIXTURES if p.name.startswith("pamfr_")]
    assert len(adt) >= 3
    for fixture in adt:
        bundle = mappings.convert(fixture.read_bytes(), "hl7v2")
        kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
        assert kinds == ["Patient", "Encounter", "Encounter"], fixture.name


def test_forcing_the_adt_mapping_on_a_cda_carrier_still_gives_valid_fhir():
    payload = (HL7V2 / "oru_r01_crbio_init.hl7").read_bytes()
    bundle = mappings.convert(payload, "hl7v2", "pamfr-adt")
    assert bundle_problems(bundle, "full") == []
