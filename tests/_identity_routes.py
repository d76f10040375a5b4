"""The identity tests' engine: an MLLP feed routed to a DCC and to a DMP that holds
messages until the patient's identity is qualified, and the A01 editor that feeds it.

Touches: nothing (text and bytes only).
"""

from __future__ import annotations

from tests.engine_harness import A01

INS = "279035121518989"  # the INS of the A01 fixture

HELD_ROUTES = """
engine: {{data_dir: {data}}}
listeners:
  - {{name: chu-x, type: mllp, bind: "127.0.0.1:0", test_feed: true}}
destinations:
  - {{name: dcc, type: mllp, host: 127.0.0.1, port: {dcc}, retry: {{initial: 0.05s, max: 0.2s}}}}
  - name: dmp
    type: mllp
    host: 127.0.0.1
    port: {dmp}
    require_qualified_identity: true
    retry: {{initial: 0.05s, max: 0.2s}}
routes:
  - {{name: all, from: [chu-x], to: [dcc, dmp]}}
"""
"""routes.yaml (a ``str.format`` template: ``data``, ``dcc``, ``dmp``) of a feed ``chu-x``
routed to ``dcc`` and to ``dmp``, which requires a qualified identity; a test appends
its own sections (``console:``, ``identity:``)."""


def identity_msg(
    control_id: str, *, pid32: str = "VALI", ins: str = INS, trigger: str = "A01"
) -> bytes:
    """The A01 fixture with MSH-10 ``control_id``, trigger ``trigger``, identity
    reliability PID-32 ``pid32`` and INS ``ins`` in PID-3."""
    text = A01.decode().replace("\r\n", "\r").replace("\n", "\r").rstrip("\r")
    segs = text.split("\r")
    msh = segs[0].split("|")
    msh[8], msh[9] = f"ADT^{trigger}^ADT_{trigger}", control_id
    segs[0] = "|".join(msh)
    pid = segs[2].split("|")
    pid[3] = pid[3].replace(INS, ins)
    pid[32] = pid32
    segs[2] = "|".join(pid)
    return ("\r".join(segs) + "\r").encode()
