"""HL7 v2 messages a stand-in sender sends: a template ADT with another header and patient.

Touches: nothing (the template is passed in; tests and benchmarks read the national PAM FR
A01 fixture and hand it here).
"""

from __future__ import annotations

__all__ = ["adt_from"]


def adt_from(
    template: bytes,
    control_id: str,
    patient: str = "000003",
    trigger: str = "A01",
    facility: str = "CHU-X",
    *,
    application: str | None = None,
    msh15: str | None = None,
    version: str | None = None,
    charset: str | None = None,
    pid_name: str | None = None,
    sep: str = "\r",
) -> bytes:
    """``template`` (an ADT whose PID-3 starts ``000003^^^CHU-X``) with MSH-4 ``facility``,
    MSH-9 ``ADT^<trigger>^ADT_<trigger>``, MSH-10 ``control_id`` and the patient id
    ``patient``; the keyword fields replace MSH-3, MSH-15, MSH-12, MSH-18 and PID-5 when
    given; ``sep`` ends each segment."""
    text = template.decode("utf-8").replace("\r\n", "\r").replace("\n", "\r").rstrip("\r")
    segs = text.split("\r")
    msh = segs[0].split("|")
    msh += [""] * (18 - len(msh))
    msh[3] = facility
    msh[8] = f"ADT^{trigger}^ADT_{trigger}"
    msh[9] = control_id
    for index, value in ((2, application), (14, msh15), (11, version), (17, charset)):
        if value is not None:
            msh[index] = value
    segs[0] = "|".join(msh)
    for i, seg in enumerate(segs):
        if seg.startswith("PID|"):
            seg = seg.replace("000003^^^CHU-X", f"{patient}^^^CHU-X", 1)
            if pid_name is not None:
                fields = seg.split("|")
                fields[5] = pid_name
                seg = "|".join(fields)
            segs[i] = seg
    return (sep.join(segs) + sep).encode("utf-8")
