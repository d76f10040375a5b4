"""The national CR-BIO ORU of the DMP tests, edited per test, and the lab's technical
acknowledgement of the ZAM^Z01 that answers it.

Touches: files (reads the HL7 v2 fixture once, at import).
"""

from __future__ import annotations

import base64

from standins.mllp import msh10
from tests._paths import HL7V2

ORU = b"\r".join((HL7V2 / "oru_r01_crbio_init.hl7").read_bytes().splitlines())


def crbio_oru(control_id: str, *, delete: bool = False, cda_suffix: bytes = b"") -> bytes:
    """The national CR-BIO ORU under another MSH-10; ``delete``: its deletion (ORC-1 CA,
    OBX-11 D on the document OBX, the same CDA); ``cda_suffix``: bytes added to its CDA
    (the same uniqueId, another hash)."""
    segments = ORU.split(b"\r")
    for i, segment in enumerate(segments):
        fields = segment.split(b"|")
        if segment.startswith(b"MSH|"):
            fields[9] = control_id.encode()
        elif delete and segment.startswith(b"ORC|"):
            fields[1] = b"CA"
        elif segment.startswith(b"OBX|1|ED|"):
            if delete:
                fields[11] = b"D"
            if cda_suffix:
                parts = fields[5].split(b"^")
                parts[4] = base64.b64encode(base64.b64decode(parts[4]) + cda_suffix)
                fields[5] = b"^".join(parts)
        segments[i] = b"|".join(fields)
    return b"\r".join(segments)


def ack_z01(payload: bytes) -> bytes:
    """The lab's technical acknowledgement of a ZAM (IG: ``ACK^Z01^ACK``), for
    ``MllpPeer(ack_z01)``."""
    cid = msh10(payload).encode()
    return (
        b"MSH|^~\\&|SIL-Y|labo|PFI-X|Organisation-X|20260101000000||ACK^Z01^ACK|A"
        + cid
        + b"|P|2.6|||||FRA|UNICODE UTF-8\rMSA|AA|"
        + cid
        + b"\r"
    )
