"""The national health identifier (INS): NIR/NIA key check and OID coherence.

Touches: nothing.

An INS matricule is 13 characters and a 2-digit key; key = 97 - (number mod 97),
with Corsica's department codes "2A" and "2B" read as 19 and 18 before the
modulo (assurance-maladie-digital/nir-validation). OIDs (FR Core):
1.2.250.1.213.1.4.8 INS-NIR, .9 INS-NIA, .10 INS-NIR test, .11 INS-NIR demo;
test and demo OIDs are refused unless the flow is marked as a test feed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "INS_NIA_OID",
    "INS_NIR_DEMO_OID",
    "INS_NIR_OID",
    "INS_NIR_TEST_OID",
    "InsCheck",
    "check_ins",
    "ins_key",
]

INS_NIR_OID = "1.2.250.1.213.1.4.8"
INS_NIA_OID = "1.2.250.1.213.1.4.9"
INS_NIR_TEST_OID = "1.2.250.1.213.1.4.10"
INS_NIR_DEMO_OID = "1.2.250.1.213.1.4.11"

_KINDS = {
    INS_NIR_OID: "INS-NIR",
    INS_NIA_OID: "INS-NIA",
    INS_NIR_TEST_OID: "INS-NIR (test)",
    INS_NIR_DEMO_OID: "INS-NIR (demo)",
}
_TEST_OIDS = frozenset({INS_NIR_TEST_OID, INS_NIR_DEMO_OID})
_SHAPE = re.compile(r"^[1-8]\d{4}(?:\d{2}|2[AB])\d{6}\d{2}$")


@dataclass(frozen=True, slots=True)
class InsCheck:
    """The verdict on one INS: ``valid``, and ``reason`` when it is not."""

    valid: bool
    reason: str = ""
    kind: str = ""

    def __str__(self) -> str:
        return f"valid {self.kind or 'INS'}" if self.valid else f"invalid: {self.reason}"


def ins_key(matricule: str) -> int:
    """The key of a 13-character matricule (Corsica 2A/2B handled)."""
    if len(matricule) != 13:
        raise ValueError("a matricule has 13 characters")
    dept = matricule[5:7].upper()
    body = matricule[:5] + {"2A": "19", "2B": "18"}.get(dept, dept) + matricule[7:]
    if not body.isdigit():
        raise ValueError("a matricule has digits only, but for 2A/2B in the department")
    return 97 - int(body) % 97


def check_ins(number: str, oid: str | None = None, *, allow_test_oids: bool = False) -> InsCheck:
    """Checks the shape, the key and (when given) the OID of an INS."""
    value = number.strip().upper().replace(" ", "")
    if len(value) != 15:
        return InsCheck(False, f"an INS has 15 characters (13 + a 2-digit key), not {len(value)}")
    if not _SHAPE.match(value):
        return InsCheck(
            False,
            "unexpected characters: digits only, 2A/2B allowed as department (positions 6-7)",
        )
    expected = ins_key(value[:13])
    given = int(value[13:])
    if given != expected:
        return InsCheck(False, f"the key is {value[13:]}, the number gives {expected:02d}")
    kind = ""
    if oid is not None:
        oid = oid.strip()
        if oid.startswith("urn:oid:"):
            oid = oid[len("urn:oid:") :]
        if oid not in _KINDS:
            return InsCheck(False, f"OID {oid} is not an INS OID ({INS_NIR_OID} or {INS_NIA_OID})")
        if oid in _TEST_OIDS and not allow_test_oids:
            return InsCheck(
                False, f"OID {oid} is a {_KINDS[oid]} OID, refused outside a test feed", _KINDS[oid]
            )
        kind = _KINDS[oid]
    return InsCheck(True, kind=kind)
