"""The CDA patient rule: a region's charter file may lower the severity.

Touches: files (a region charter in tmp_path).
"""

from __future__ import annotations

from pathlib import Path

from tests._cda_patient import (
    OTHER_INS,
    RULE,
    cda_with,
    oru,
    plan_of,
)


def test_a_region_may_lower_the_severity(tmp_path: Path) -> None:
    region = tmp_path / "region.yaml"
    region.write_text(
        "rules:\n"
        f"  - id: {RULE}\n"
        "    severity: warn\n"
        "    check: same_patient_as_document\n"
        "    message: patient différent\n",
        encoding="utf-8",
    )
    identity = f"identity:\n  charter: [{region}]\n"
    payload = oru(cda_with('extension="279035121518989"', f'extension="{OTHER_INS}"'))
    plan = plan_of(payload, identity)
    assert plan.status == "processed"
    assert (RULE, "warn") in {(a[0], a[1]) for a in plan.anomalies}
