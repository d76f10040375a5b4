"""The mapping engine: file:line errors, HL7 v2 source paths, FSH soft indexing,
transforms, conditions, deterministic urn:uuid, and the two FHIR checks."""

import copy
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import mappings
from eai import hl7
from eai.errors import ConfigError, InputError
from mappings._context import MappingFailure
from mappings._fhirmodel import resource_model
from mappings._fhirpath import compile_target
from mappings._loader import load_mapping_file
from mappings._transforms import hl7_date, hl7_datetime
from mappings._validate import bundle_problems
from tests._paths import HL7V2

A01 = (HL7V2 / "pamfr_a01_admission.er7").read_bytes()

HEAD = """\
name: m
source: hl7v2
tables:
  sex: {M: male, F: female}
resources:
  - id: patient
    type: Patient
    rules:
"""


def _load(tmp_path: Path, rules: str, head: str = HEAD):
    path = tmp_path / "m.yaml"
    path.write_text(head + rules, encoding="utf-8")
    return load_mapping_file(path)


def _issues(tmp_path: Path, rules: str, head: str = HEAD) -> list[str]:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, rules, head)
    return [str(i) for i in info.value.issues]


def _patient(compiled, payload: bytes = A01) -> dict:
    return compiled.run(hl7.parse(payload))["entry"][0]["resource"]


# -- loading: every problem with file:line:column -----------------------------


def test_unknown_fhir_element_points_at_the_key(tmp_path):
    issues = _issues(tmp_path, "      - set:\n          birthdate: PID-7\n")
    assert len(issues) == 1
    assert issues[0].startswith(f"{tmp_path / 'm.yaml'}:10:11: ")
    assert "Patient has no element 'birthdate' (did you mean 'birthDate'?)" in issues[0]


def test_bad_source_path_unknown_transform_table_ref_are_all_reported(tmp_path):
    rules = (
        "      - set:\n"
        "          gender: {from: PID-8, transform: [{code: nosuch}]}\n"
        "          birthDate: {from: PID-7x, transform: [date]}\n"
        "          active: {from: PID-30, transform: [shout]}\n"
        "          generalPractitioner[+]: {ref: doctor}\n"
    )
    issues = _issues(tmp_path, rules)
    text = "\n".join(issues)
    assert ":10:" in text and "unknown table 'nosuch'" in text
    assert ":11:" in text and "invalid HL7 v2 path 'PID-7x'" in text
    assert ":12:" in text and "unknown transform 'shout'" in text
    assert ":13:" in text and "no resource 'doctor'" in text


def test_structure_errors_are_positioned_and_name_the_choice(tmp_path):
    issues = _issues(tmp_path, "      - set: {gender: PID-8}\n        fn: x\n")
    assert any(":9:9:" in i and "exactly one of set, fn, rules" in i for i in issues), issues
    issues = _issues(tmp_path, "      - set:\n          gender: {from: PID-8, value: M}\n")
    assert any("exactly one of from, value" in i for i in issues)


def test_duplicate_key_and_bad_yaml(tmp_path):
    dup = "      - set:\n          gender: PID-8\n          gender: PID-8\n"
    assert "duplicate key 'gender'" in _issues(tmp_path, dup)[0]
    assert "invalid YAML" in _issues(tmp_path, "      - set: [\n")[0]


def test_name_must_match_the_file_and_source_must_exist(tmp_path):
    head = HEAD.replace("name: m", "name: other")
    assert any("file name" in i for i in _issues(tmp_path, "      - set: {gender: PID-8}\n", head))
    head = HEAD.replace("source: hl7v2", "source: fax")
    assert "unknown source 'fax'" in _issues(tmp_path, "      - set: {gender: PID-8}\n", head)[0]


def test_relative_path_outside_for_each_is_an_error(tmp_path):
    issues = _issues(tmp_path, "      - set: {gender: .8}\n")
    assert "relative to a field item" in issues[0]


def test_type_filter_needs_a_known_datatype(tmp_path):
    issues = _issues(tmp_path, "      - for_each: ZZZ-3[type=X]\n        set: {gender: .1}\n")
    assert "[type=...] does not know the data type of ZZZ-3" in issues[0]


def test_float_looking_paths_stay_text(tmp_path):
    rules = "      - for_each: PID-3\n        set:\n          identifier[+].value: .1\n"
    patient = _patient(_load(tmp_path, rules))
    assert [i["value"] for i in patient["identifier"]] == ["000003", "279035121518989"]


# -- HL7 v2 source paths -------------------------------------------------------


def test_repetition_filters_and_relative_paths(tmp_path):
    rules = """\
      - set:
          identifier[+].value: PID-3[type=INS].1
          identifier[=].system: PID-3[2].4.2
      - set:
          identifier[+].value: PID-3[5=PI].4.2
      - for_each: PID-11[type=BDL]
        set:
          address[+].postalCode: .9
      - for_each: ZBE
        set:
          address[+].city: -7[type=UF].1
"""
    patient = _patient(_load(tmp_path, rules))
    assert patient["identifier"] == [
        {"value": "279035121518989", "system": "1.2.250.1.213.1.4.10"},
        {"value": "000897406"},
    ]
    assert patient["address"] == [{"postalCode": "63220"}, {"city": "Chir V"}]


def test_where_filters_items_and_conditions_combine(tmp_path):
    rules = """\
      - for_each: PID-3
        where: {not: {path: .5, in: [PI]}}
        set:
          identifier[+].value: .1
      - when: {all: [{exists: PV1}, {message_type: ["ADT^A01"]}, {path: PID-8, equals: F}]}
        set: {gender: {value: female}}
      - when: {any: [{exists: MRG}, {path: PID-7, exists: false}]}
        set: {active: {value: false}}
"""
    patient = _patient(_load(tmp_path, rules))
    assert [i["value"] for i in patient["identifier"]] == ["279035121518989"]
    assert patient["gender"] == "female" and "active" not in patient


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


def test_an_all_empty_block_creates_nothing(tmp_path):
    rules = "      - set:\n          name[+].family: PID-99\n          name[=].given: PID-98\n"
    assert "name" not in _patient(_load(tmp_path, rules))


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


def test_table_transforms_split_default_base64_and_functions(tmp_path):
    (tmp_path / "codes.csv").write_text("code,value\n# comment\nL,official\n", encoding="utf-8")
    head = HEAD.replace("  sex: {M: male, F: female}", "  sex: {M: male}\n  use: {file: codes.csv}")
    rules = """\
      - set:
          gender: {from: PID-8, transform: [{code: sex}]}
          name[+].use: {from: PID-5.7, transform: [{lookup: use}]}
          name[=].given: {from: PID-5.3, transform: [{split: " "}, lower]}
          name[=].text: {from: PID-99, transform: [{default: none}]}
          name[=].prefix: {value: "Q0hVLVg=", transform: [base64]}
          name[=].suffix: {from: [PID-3.4.1, PID-3.4.2, PID-3.4.3], transform: [{fn: hd_system}]}
          name[=].family: {concat: [PID-5.1, {value: X}, PID-99], sep: "|"}
          birthDate: {first: [PID-99, {from: PID-7, transform: [date]}]}
"""
    patient = _patient(_load(tmp_path, rules, head))
    assert patient["gender"] == "F"  # unknown code passes through {code}
    assert patient["name"] == [
        {
            "use": "official",
            "given": ["dominique"],
            "text": "none",
            "prefix": ["CHU-X"],
            "suffix": ["urn:oid:1.2.250.1.71.4.2.2.1000897406"],
            "family": "PAT-TROIS|X",
        }
    ]
    assert patient["birthDate"] == "1979-03-28"


def test_a_failing_transform_names_the_rule_not_the_value(tmp_path):
    compiled = _load(
        tmp_path, "      - set:\n          birthDate: {from: PID-5.1, transform: [date]}\n"
    )
    with pytest.raises(MappingFailure) as info:
        compiled.run(hl7.parse(A01))
    text = str(info.value)
    assert "m.yaml:10: PID-5.1: not an HL7/CDA TS date" in text
    assert "PAT-TROIS" not in text


def test_rule_functions_receive_the_context(tmp_path):
    @mappings.mapping_function("test_flag_female")
    def flag(ctx: mappings.MappingContext) -> None:
        if ctx.value("PID-8") == "F":
            ctx.set("gender", "female")
            ctx.set("link[+].other", ctx.ref("patient"))
            ctx.set("link[=].type", "seealso")

    patient = _patient(_load(tmp_path, "      - fn: test_flag_female\n"))
    assert patient["gender"] == "female"
    assert patient["link"][0]["other"]["reference"].startswith("urn:uuid:")
    issues = _issues(
        tmp_path, "      - set: {gender: {from: PID-8, transform: [{fn: test_flag_female}]}}\n"
    )
    assert "is a rule" in issues[0]


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


def test_a_failing_case_shows_expected_and_actual(tmp_path):
    from click.testing import CliRunner

    from eai.cli import cli
    from mappings._cases import run_cases

    compiled = _load(
        tmp_path, "      - set:\n          gender: {from: PID-8, transform: [{code: sex}]}\n"
    )
    tests = tmp_path / "m.tests.yaml"
    tests.write_text(
        "mapping: m\ncases:\n"
        f"  - name: gender\n    input: {HL7V2 / 'pamfr_a01_admission.er7'}\n"
        "    expect:\n      Bundle.entry[0].resource.gender: male\n"
        "      Bundle.entry.count(): {count: 1}\n",
        encoding="utf-8",
    )
    (result,) = run_cases(tests, lambda p, ct, m: compiled.run(hl7.parse(p)), lambda m: "hl7v2")
    assert not result.passed
    assert result.diff == [
        "Bundle.entry[0].resource.gender",
        '  expected: ["male"]',
        '  actual:   ["female"]',
    ]
    assert str(result).startswith("FAIL m: gender\n    Bundle.entry[0].resource.gender")

    def failing(name=None):
        return [result]

    import mappings as package

    original = package.run_mapping_tests
    package.run_mapping_tests = failing
    try:
        outcome = CliRunner().invoke(cli, ["mapping", "test"])
    finally:
        package.run_mapping_tests = original
    assert outcome.exit_code == 1
    assert 'expected: ["male"]' in outcome.output
    assert outcome.output.strip().endswith("0 passed, 1 failed")
