"""The national ORU carrying a CDA, edits of its patient, and its plan through the pipeline.

Touches: nothing (reads the national fixture). Used by the CDA patient rule tests.
"""

from __future__ import annotations

import base64
import os
from datetime import datetime
from typing import Any

from eai import hl7
from eai.config import load_config_text
from eai.pipeline import plan_message
from eai.store import Cipher, ClaimedMessage
from tests._paths import HL7V2

ORU = (HL7V2 / "oru_r01_crbio_init.hl7").read_bytes()

CDA = hl7.embedded_documents(hl7.parse(ORU))[0].data

CIPHER = Cipher(os.urandom(32))

RULE = "CDA-PATIENT-DIFFERENT"

OTHER_INS = "180012B01234567"  # not the fixture's 279035121518989


def oru(cda: bytes = CDA, *, pid: tuple[str, str] | None = None, unpadded: bool = False) -> bytes:
    """The national ORU carrying ``cda``; ``pid``: one (old, new) replacement in PID."""
    encoded = base64.b64encode(cda).decode("ascii")
    text = ORU.decode("utf-8").replace("\r\n", "\r").replace("\n", "\r")
    segs = text.split("\r")
    for i, seg in enumerate(segs):
        if seg.startswith("OBX|1|ED|"):
            fields = seg.split("|")
            components = fields[5].split("^")
            components[4] = encoded.rstrip("=") if unpadded else encoded
            fields[5] = "^".join(components)
            segs[i] = "|".join(fields)
        elif seg.startswith("PID|") and pid is not None:
            assert pid[0] in seg
            segs[i] = seg.replace(pid[0], pid[1], 1)
    return "\r".join(segs).encode("utf-8")


def cda_with(old: str, new: str) -> bytes:
    """The fixture's CDA with the first ``old`` (in its recordTarget) replaced by ``new``."""
    text = CDA.decode("utf-8")
    start = text.index("<recordTarget")
    at = text.index(old, start)
    return (text[:at] + new + text[at + len(old) :]).encode("utf-8")


ROUTES = """
listeners:
  - {{name: in, type: mllp, bind: "127.0.0.1:0", test_feed: true}}
destinations:
  - {{name: dmp, type: mllp, host: 127.0.0.1, port: 1}}
  - {{name: dcc, type: mllp, host: 127.0.0.1, port: 2}}
routes:
  - name: to-dmp
    from: [in]
    when: {{fact: DESTDMP, equals: "Y"}}
    to: [dmp]
  - {{name: all-oru, from: [in], when: {{message_type: [ORU]}}, to: [dcc]}}
{identity}
"""


def plan_of(payload: bytes, identity: str = "") -> Any:
    config = load_config_text(ROUTES.format(identity=identity), "routes.yaml", env={})
    claimed = ClaimedMessage(1, "in", datetime(2026, 1, 1), "hl7v2", "", "", CIPHER.seal(payload))
    return plan_message(config, CIPHER, claimed)
