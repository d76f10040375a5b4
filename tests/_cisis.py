"""The national CI-SIS ORU and MDM examples, segment edits, and an MDM carrying a given CDA.

Touches: nothing (reads the national fixtures).
"""

from __future__ import annotations

import base64

from tests._paths import HL7V2

ORU = (HL7V2 / "oru_r01_crbio_init.hl7").read_bytes()
MDM = (HL7V2 / "mdm_t02_crimg_init.er7").read_bytes()


def segments(payload: bytes) -> list[str]:
    text = payload.decode("utf-8").replace("\r\n", "\r").replace("\n", "\r")
    return [s for s in text.split("\r") if s]


def build(segs: list[str]) -> bytes:
    return ("\r".join(segs) + "\r").encode("utf-8")


def edit(payload: bytes, name: str, field: int, value: str, occurrence: int = 1) -> bytes:
    """``payload`` with field ``field`` of the ``occurrence``-th ``name`` segment replaced."""
    segs, seen = segments(payload), 0
    for i, seg in enumerate(segs):
        if seg.startswith(name + "|"):
            seen += 1
            if seen == occurrence:
                fields = seg.split("|")
                index = field - 1 if name == "MSH" else field
                fields += [""] * (index + 1 - len(fields))
                fields[index] = value
                segs[i] = "|".join(fields)
    return build(segs)


def mdm_with(cda: bytes, trigger: str = "T02", orc: str = "NW", status: str = "F") -> bytes:
    """The national MDM example carrying ``cda`` (its placeholder replaced)."""
    data = base64.b64encode(cda).decode()
    out = edit(MDM, "OBX", 5, f"^text^XML^Base64^{data}", occurrence=1)
    out = edit(out, "MSH", 9, f"MDM^{trigger}^MDM_T02")
    out = edit(out, "ORC", 1, orc)
    return edit(out, "OBX", 11, status, occurrence=1)
