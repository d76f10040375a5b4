"""Give the Patient of an ORU/MDM (copied from its CDA) the identity status of the message's
PID-32, which a CDA does not carry.

Touches: nothing (runs the ``pamfr-adt`` mapping on the message in memory).

Rule ``cisis_identity_status`` (``cisis-oru-mdm.yaml``, on the Patient, after
``cisis_copy``): when PID-32 (identity reliability code, RNIV: PROV, RECUP,
VALI, QUAL, and the table 0445 attributes) has a value, the FR Core extension
``fr-core-identity-reliability`` that ``pamfr-adt`` makes of the same PID (its
rules, not a copy of them) replaces any the Patient had. Nothing is done
without PID-32, so a message without it maps as before.
"""

from __future__ import annotations

from typing import Any

from mappings._context import MappingContext
from mappings._registry import mapping_function
from mappings.functions.cisis_source import PATIENT_MAPPING, CisisDocument

__all__ = ["RELIABILITY", "cisis_identity_status"]

RELIABILITY = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability"


def _pid_reliability(document: CisisDocument) -> list[dict[str, Any]]:
    from mappings import load_mapping  # late: mappings imports this package while loading

    bundle = load_mapping(PATIENT_MAPPING).run(document.message)
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "Patient":
            return [e for e in resource.get("extension", []) if e.get("url") == RELIABILITY]
    return []


@mapping_function("cisis_identity_status")
def cisis_identity_status(ctx: MappingContext) -> None:
    """The Patient gets the identity reliability of PID-32 (see the module docstring)."""
    document = ctx.document
    if not isinstance(document, CisisDocument):
        raise ValueError("this function reads a 'cisis' source (CDA in HL7 v2)")
    if not any(v.strip() for v in document.message.get_all("PID-32")):
        return
    found = _pid_reliability(document)
    if not found:
        return
    kept = [e for e in ctx.resource.get("extension", []) if e.get("url") != RELIABILITY]
    ctx.resource["extension"] = kept + found
