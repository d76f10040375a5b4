"""Functions of the PAM FR (IHE PAM France 2.11) mappings: assigning authorities to FHIR systems.

Touches: files (reads ``mappings/tables/authorities.csv`` once, on first use).
"""

from __future__ import annotations

import functools
import re
from typing import Any

from mappings._loader import MAPPINGS_DIR
from mappings._registry import mapping_function
from mappings._transforms import load_table

__all__ = ["STRUCTURE_ROOT", "hd_system"]

STRUCTURE_ROOT = "1.2.250.1.71.4.2.2"
"""ANS root of the national structure identifiers (IDNST = ``1`` + FINESS)."""

_OID = re.compile(r"[0-2](\.(0|[1-9][0-9]*))+")
_FINESS = re.compile(r"[0-9]{9}")


@functools.cache
def _authorities() -> dict[str, str]:
    return load_table({"file": "authorities.csv"}, MAPPINGS_DIR / "tables")


@mapping_function("hd_system", kind="transform")
def hd_system(value: Any) -> str:
    """HD ``[namespace id, universal id, universal id type]`` -> an Identifier.system.

    Used as ``{from: [PID-3.4.1, PID-3.4.2, PID-3.4.3], transform: [{fn: hd_system}]}``
    (for an EI such as ZBE-1: components 2, 3, 4). In order:

    1. ``tables/authorities.csv`` (``code,value``), looked up by universal id,
       then by namespace id: the region states the real system of an authority;
    2. a universal id that is an OID (PAM FR: ``&<OID>&ISO``) -> ``urn:oid:<OID>``;
    3. a universal id that is a FINESS (9 digits, the national examples carry
       ``CHU-X&000897406&M``: table 0301 M/N/L = locally defined) ->
       ``urn:oid:1.2.250.1.71.4.2.2.1<FINESS>``: the ANS structure root followed by
       the IDNST, as FR Core suggests for Encounter.identifier.system when the
       establishment has no OID of its own;
    4. else no system ("").
    """
    parts = [p.strip() for p in value] if isinstance(value, list) else [str(value).strip()]
    namespace, uid = (parts + ["", ""])[:2]
    table = _authorities()
    for key in (uid, namespace):
        if key and key in table:
            return table[key]
    if _OID.fullmatch(uid):
        return f"urn:oid:{uid}"
    if _FINESS.fullmatch(uid):
        return f"urn:oid:{STRUCTURE_ROOT}.1{uid}"
    return ""
