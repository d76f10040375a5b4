"""Shape Observations for SCAD, the regional home telemonitoring service (``scad-observations``).

Touches: nothing.

After the ANS telemonitoring IG (``ansforge/IG-fhir-telesurveillance``, Observation of a
telemonitored patient) and FHIR R4's vital signs profile: each Observation keeps the
copy ``cisis_copy`` made (subject: the FR Core Patient of the Bundle) and
``scad_observation`` then gives it

- ``category`` ``vital-signs`` (http://terminology.hl7.org/CodeSystem/observation-category)
  when its LOINC code is one of FHIR R4's vital signs (:data:`VITAL_SIGNS`), else
  ``laboratory``, once (a category the CDA mapping gave is kept, not doubled);
- ``device``: the Device of the Bundle (mapping resource ``device``), when the message
  names the equipment that measured (OBX-18); none otherwise.
"""

from __future__ import annotations

from typing import Any

from mappings._context import MappingContext
from mappings._registry import mapping_function

__all__ = ["CATEGORY_SYSTEM", "VITAL_SIGNS", "scad_observation"]

CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
LOINC = "http://loinc.org"
VITAL_SIGNS = frozenset(
    {
        "85353-1",  # vital signs panel
        "9279-1",  # respiratory rate
        "8867-4",  # heart rate
        "2708-6",  # oxygen saturation in arterial blood
        "59408-5",  # oxygen saturation by pulse oximetry
        "8310-5",  # body temperature
        "8302-2",  # body height
        "9843-4",  # head circumference
        "29463-7",  # body weight
        "39156-5",  # body mass index
        "85354-9",  # blood pressure panel
        "8480-6",  # systolic blood pressure
        "8462-4",  # diastolic blood pressure
        "8478-0",  # mean blood pressure
    }
)
"""The LOINC codes of FHIR R4's vital signs profiles (observation-vitalsigns)."""


@mapping_function("scad_observation")
def scad_observation(ctx: MappingContext) -> None:
    """Category and device of the Observation being built (see the module docstring)."""
    resource: dict[str, Any] = ctx.resource
    codes = {
        c.get("code")
        for c in (resource.get("code") or {}).get("coding") or ()
        if isinstance(c, dict) and c.get("system") == LOINC
    }
    wanted = "vital-signs" if codes & VITAL_SIGNS else "laboratory"
    categories: list[dict[str, Any]] = resource.setdefault("category", [])
    has = any(
        c.get("system") == CATEGORY_SYSTEM and c.get("code") == wanted
        for category in categories
        for c in category.get("coding") or ()
    )
    if not has:
        categories.append({"coding": [{"system": CATEGORY_SYSTEM, "code": wanted}]})
    device = ctx.ref("device")
    if device is not None:
        resource["device"] = device
