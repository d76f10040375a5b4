"""`eai convert` and `eai mapping test` as an integrator runs them (subprocesses)."""

import json
import subprocess
import sys

import pytest

from tests._paths import HL7V2

pytestmark = pytest.mark.integration

EAI = [sys.executable, "-c", "from eai.cli import main; main()"]


def _eai(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*EAI, *args], capture_output=True, timeout=120, check=False)


def test_convert_prints_only_the_bundle_on_stdout():
    done = _eai("convert", str(HL7V2 / "pamfr_a01_admission.er7"))
    assert done.returncode == 0, done.stderr.decode()
    bundle = json.loads(done.stdout)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == [
        "Patient",
        "Encounter",
        "Encounter",
        "Consent",  # ZFA: DMP feeding, then consultation
        "Consent",
    ]
    assert done.stderr == b""


def test_convert_with_a_named_mapping_and_light_check():
    done = _eai(
        "convert",
        "--mapping",
        "pamfr-adt",
        "--validation",
        "light",
        str(HL7V2 / "pamfr_a03_sortie.er7"),
    )
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout)["entry"][1]["resource"]["status"] == "finished"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"garbage\r", "message does not start with an MSH segment"),
        (b"MSH|^~\\&|A|B|C|D|20260101||QRY^A19|1|P|2.5\r", "no mapping takes QRY^A19"),
    ],
)
def test_input_it_cannot_map_is_one_line_naming_the_file(tmp_path, content, expected):
    path = tmp_path / "in.hl7"
    path.write_bytes(content)
    done = _eai("convert", str(path))
    assert done.returncode == 1
    assert done.stdout == b""
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"eai: error: {path}: ") and expected in lines[0]


def test_unknown_mapping_name_is_a_usage_error():
    done = _eai("convert", "--mapping", "nope", str(HL7V2 / "pamfr_a01_admission.er7"))
    assert done.returncode == 2 and done.stdout == b""
    assert b"no mapping named 'nope'" in done.stderr


def test_mapping_test_runs_the_cases_beside_the_mapping():
    done = _eai("mapping", "test", "pamfr-adt")
    out = done.stdout.decode()
    assert done.returncode == 0, out
    assert "ok   pamfr-adt: A01 admission" in out
    assert out.strip().splitlines()[-1].endswith(" passed, 0 failed")


def test_mapping_list_names_the_mappings():
    done = _eai("mapping", "list")
    assert done.returncode == 0
    lines = done.stdout.decode().splitlines()
    assert any(line.startswith("pamfr-adt\thl7v2\t") for line in lines)
