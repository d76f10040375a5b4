"""The identity charter from files: a region adds and overrides rules; bad charter files are
config errors.

Touches: files (charters written in tmp_path).
"""

from dataclasses import replace
from datetime import date

import pytest

from eai import hl7
from eai.errors import ConfigError
from identity.charter import CheckContext, evaluate_charter, load_charter
from identity.patient import identity_from_hl7
from tests._paths import HL7V2

TEST_FEED = CheckContext(test_feed=True, today=date(2026, 11, 23))


def _fixture_identity(name="pamfr_a01_admission.er7"):
    return identity_from_hl7(hl7.parse((HL7V2 / name).read_bytes()))


def test_region_adds_and_overrides_rules(tmp_path):
    extra = tmp_path / "region.yaml"
    extra.write_text(
        "rules:\n"
        "  - {id: SEXE, severity: warn, reads: [sex], check: {in: [M, F]}, message: m}\n"
        "  - {id: REGION-IPP, severity: warn, reads: [birth_name],\n"
        "     check: {pattern: '^[A-Z -]+$'}, message: majuscules}\n"
    )
    rules = load_charter([extra])
    ids = [r.id for r in rules]
    assert ids.count("SEXE") == 1 and "REGION-IPP" in ids
    p = replace(_fixture_identity(), sex="U", birth_name="Pat-trois")
    broken = {a.rule: a.severity for a in evaluate_charter(rules, p, TEST_FEED)}
    assert broken == {"SEXE": "warn", "REGION-IPP": "warn"}


@pytest.mark.parametrize(
    "text,why",
    [
        ("rules:\n  - {id: X, severity: block, check: ins_key_valid}\n", "severity"),
        ("rules:\n  - {id: X, severity: warn, check: nope}\n", "unknown check"),
        ("rules:\n  - {id: X, severity: warn, check: {regex: x}}\n", "unknown check"),
        ("rules:\n  - {id: X, severity: warn, check: ins_key_valid, colour: red}\n", "unknown key"),
    ],
)
def test_bad_charter_files_are_config_errors(tmp_path, text, why):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=why):
        load_charter([f])
