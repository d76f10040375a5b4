"""A full run's logs carry no patient data: names, birth dates, INS, IPP, addresses.

``eai run`` at its default level (INFO) receives every national fixture (accepted,
rejected, retransmitted, routed to a peer that accepts, one that refuses, one that
is down) and a series of broken MLLP blocks that all contain the fixture's PID;
its stderr must not contain any patient value read from the fixtures' PID segments.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from standins.mllp import MllpPeer, ack_for
from tests._mllp import EB, SB, MllpError, MllpSender
from tests._paths import HL7V2
from tests._proc import EAI, EaiProcess, journal, listener_port, wait_port
from tests.engine_harness import A01

pytestmark = pytest.mark.fault

MAX_MESSAGE_BYTES = 8192

ROUTES = """
engine:
  data_dir: {data_dir}
listeners:
  - name: national
    type: mllp
    bind: 127.0.0.1:{port}
    max_message_bytes: {max_bytes}
    frame_timeout: 1s
  - name: chu-x-only
    type: mllp
    bind: 127.0.0.1:{port2}
    allowed_senders: [CHU-X]
destinations:
  - name: dcc
    type: mllp
    host: 127.0.0.1
    port: {dcc}
    ack_timeout: 1s
    retry: {{initial: 0.05s, max: 0.2s}}
  - name: refusing
    type: mllp
    host: 127.0.0.1
    port: {refusing}
    ack_timeout: 1s
    retry: {{initial: 0.05s, max: 0.2s}}
  - name: down
    type: mllp
    host: 127.0.0.1
    port: {down}
    retry: {{initial: 0.05s, max: 0.2s, max_attempts: 3}}
routes:
  - name: everything
    from: [national, chu-x-only]
    when:
      message_type: [ADT, ORU, MDM, ZAM, ACK]
    to: [dcc, refusing, down]
"""

# Named in the brief and in STYLE.md; the PID scan below finds them too.
KNOWN = ["PAT-TROIS", "DOMINIQUE", "19790328", "279035121518989", "Breteuil"]


def _patient_values() -> set[str]:
    """PID-3 identifiers, PID-5 names, PID-7 birth date, PID-11 street of every fixture."""
    values = set(KNOWN)
    for f in sorted(HL7V2.iterdir()):
        text = f.read_bytes().decode("utf-8", "replace")
        for seg in re.split(r"[\r\n]+", text):
            if not seg.startswith("PID|"):
                continue
            fields = seg.split("|") + [""] * 12
            for rep in fields[3].split("~"):
                values.add(rep.split("^")[0])
            values.update(fields[5].split("^")[:2])
            values.add(fields[7][:8])
            values.add(fields[11].split("~")[0].split("^")[0])
    return {v for v in values if len(v) >= 5}


def _eai_send(port: int, f: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EAI, "send", "--timeout", "10", f"127.0.0.1:{port}", str(f)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _bad_frames(port: int) -> int:
    """Broken MLLP traffic, every piece carrying the fixture's PID; returns blocks answered."""
    pid = A01.split(b"\n")[2]  # the fixture uses \n between segments
    assert pid.startswith(b"PID|")
    answered = 0

    def variant(cid: bytes, old: bytes = b"", new: bytes = b"") -> bytes:
        return A01.replace(b"|3975|", b"|" + cid + b"|", 1).replace(old, new, 1)

    blocks = [
        SB + EB,  # empty block: AR
        SB + pid + b"\r" + EB,  # no MSH: AR, control id guessed
        SB + variant(b"ENC", b"|^~\\&|", b"|^~|") + EB,  # bad encoding characters
        SB + variant(b"CHARSET", b"UNICODE UTF-8", b"KLINGON") + EB,  # unknown charset
        SB + variant(b"NOTRIGGER", b"ADT^A01^ADT_A01", b"ADT") + EB,  # accepted, routed
        SB + variant(b"\xff\xfe\xfa") + EB,  # not UTF-8 in MSH-10
        SB + variant(b"BAD-UTF8", b"DOMINIQUE", b"DOMI\xc3") + EB,  # not UTF-8 in PID-5
        SB + variant(b"BADSEG", b"\nPID|", b"\nP!D|") + EB,  # broken segment name
        SB + variant(b"BIG") + pid * (2 * MAX_MESSAGE_BYTES // len(pid)) + EB,  # oversize
        SB + variant(b"BADEND") + b"\x1cX",  # EB not followed by CR
    ]
    for block in blocks:
        with MllpSender(port, timeout=5) as s:
            try:
                s.send_raw(b"junk " + pid + block)  # bytes outside blocks first
                s.read_block()
                answered += 1
            except (MllpError, OSError):
                pass
    with MllpSender(port, timeout=5) as s:  # unterminated block, then the sender leaves
        s.send_raw(SB + A01[:200])
    with MllpSender(port, timeout=5) as s:  # a block that never ends: frame_timeout
        s.send_raw(SB + A01[:300])
        try:
            s.read_block(timeout=3)
        except MllpError:
            pass
    return answered


def test_full_run_logs_no_patient_data(tmp_path):
    port, port2 = listener_port(), listener_port()
    down = listener_port()
    with (
        MllpPeer() as dcc,
        MllpPeer(lambda p: ack_for(p, "AR")) as refusing,
    ):
        path = tmp_path / "routes.yaml"
        path.write_text(
            ROUTES.format(
                data_dir=tmp_path / "var",
                port=port,
                port2=port2,
                max_bytes=MAX_MESSAGE_BYTES,
                dcc=dcc.port,
                refusing=refusing.port,
                down=down,
            )
        )
        eng = EaiProcess(path, port, tmp_path / "eai.stderr")
        try:
            eng.start()
            assert wait_port(port2, 10)
            fixtures = sorted(HL7V2.iterdir())
            assert len(fixtures) >= 9
            codes = []
            for f in fixtures:
                for p in (port, port2):
                    res = _eai_send(p, f)
                    assert res.returncode in (0, 1), res.stderr
                    codes += [line.split("|")[1] for line in res.stdout.splitlines()]
            # Each fixture again: retransmissions answered with the stored ACK.
            for f in fixtures[:3]:
                _eai_send(port, f)
            answered = _bad_frames(port)
            time.sleep(1.5)  # retries, dead letters, frame timeout
            rc, _ = eng.terminate()
        finally:
            eng.close()
        delivered = dcc.control_ids()
    assert rc == 0
    assert {"AA", "AR"} <= set(codes), codes
    assert answered >= 9
    assert delivered, "nothing was routed: the run did not exercise delivery"
    rows = journal(path)
    assert any(r["status"] == "rejected" for r in rows)
    assert any(d["status"] == "dead" for r in rows for d in r["deliveries"])

    logs = eng.stderr()
    assert "engine stopped" in logs
    # the dead letters this run provokes are ERRORs (issue 23); nothing else is
    errors = [
        ln
        for ln in logs.splitlines()
        if " ERROR " in ln and "ERROR connectors" not in ln and "dead-lettered" not in ln
    ]
    assert " WARNING " in logs and "dead-lettered" in logs and not errors, errors
    values = _patient_values()
    assert {"PAT-TROIS", "DOMINIQUE", "19790328", "279035121518989", "000003"} <= values
    lower = logs.lower()
    leaked = sorted(v for v in values if v.lower() in lower)
    lines = [ln for ln in logs.splitlines() if any(v.lower() in ln.lower() for v in leaked)]
    assert not leaked, f"patient data in the logs: {leaked}\n" + "\n".join(lines[:10])
    print(
        f"\nlogs: {len(logs.splitlines())} lines, {len(values)} patient values searched, "
        f"{len(codes)} fixture sends ({codes.count('AA')} AA, {codes.count('AR')} AR), "
        f"{answered} broken blocks answered"
    )
