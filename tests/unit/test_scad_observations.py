"""scad_observation (mappings/functions/scad.py): the category an Observation gets for SCAD,
and its device when the Bundle has one."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from mappings._context import MappingContext
from mappings.functions.scad import CATEGORY_SYSTEM, scad_observation


def _shaped(code: str, category: list[dict[str, Any]] | None = None, device: bool = False) -> Any:
    source = SimpleNamespace(message_type=lambda doc: "ORU^R01", seed=lambda doc: b"seed")
    ctx = MappingContext("scad-observations", source, None, {})  # type: ignore[arg-type]
    if device:
        ctx.new_instance("device", "Device")
    ctx.resource = {
        "resourceType": "Observation",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
    }
    if category is not None:
        ctx.resource["category"] = category
    scad_observation(ctx)
    return ctx.resource


def _codes(resource: dict[str, Any]) -> list[str]:
    return [c["code"] for cat in resource["category"] for c in cat["coding"]]


def test_vital_signs_get_the_vital_signs_category() -> None:
    for loinc in ("8480-6", "29463-7", "59408-5"):  # systolic BP, weight, SpO2
        assert _codes(_shaped(loinc)) == ["vital-signs"]


def test_lab_results_are_laboratory_once() -> None:
    assert _codes(_shaped("2345-7")) == ["laboratory"]
    given = [{"coding": [{"system": CATEGORY_SYSTEM, "code": "laboratory"}]}]
    assert _codes(_shaped("2345-7", given)) == ["laboratory"]


def test_the_device_is_referenced_when_the_bundle_has_one() -> None:
    assert "device" not in _shaped("8867-4")
    assert _shaped("8867-4", device=True)["device"]["reference"].startswith("urn:uuid:")
