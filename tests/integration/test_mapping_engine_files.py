"""The mapping engine on mapping files: file:line errors, paths, filters, transforms, tables.

Touches: files (mapping files written in tmp_path).
"""

from pathlib import Path

import pytest

import mappings
from eai import hl7
from eai.errors import ConfigError
from mappings._context import MappingFailure
from mappings._loader import load_mapping_file
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


def test_an_all_empty_block_creates_nothing(tmp_path):
    rules = "      - set:\n          name[+].family: PID-99\n          name[=].given: PID-98\n"
    assert "name" not in _patient(_load(tmp_path, rules))


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
