"""CI-SIS ORU through a running engine (issue 15, points 1-2): a report whose base64 lost its
padding goes to the DMP with a warning in its journey; one whose CDA names another patient
is routed nowhere, listed and mailed to its establishment at once; one whose document is not
base64 is not routed on its DESTDMP flag (real MLLP peers, real SMTP server: aiosmtpd)."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hl7.client import MLLPClient

from eai import hl7
from eai.cli import cli
from standins.mllp import MllpPeer
from tests._paths import HL7V2
from tests._smtp import smtp_server
from tests.engine_harness import EngineThread

pytestmark = pytest.mark.integration

ORU = (HL7V2 / "oru_r01_crbio_init.hl7").read_bytes()
CDA = hl7.embedded_documents(hl7.parse(ORU))[0].data
INS = "279035121518989"

ROUTES = """
engine: {{data_dir: {data}}}
listeners:
  - {{name: labo, type: mllp, bind: "127.0.0.1:0", test_feed: true}}
destinations:
  - {{name: dmp, type: mllp, host: 127.0.0.1, port: {dmp}, retry: {{initial: 0.05s, max: 0.2s}}}}
routes:
  - name: to-dmp
    from: [labo]
    when: {{all: [{{message_type: [ORU]}}, {{fact: DESTDMP, equals: "Y"}}]}}
    to: [dmp]
identity:
  contacts: {{labo: [interop@labo.test]}}
  smtp: {{host: 127.0.0.1, port: {smtp}, sender: eai@grades.test}}
  digest_every: 1h
"""


def _oru(control_id: str, data: str) -> bytes:
    """The national ORU with MSH-10 ``control_id`` and OBX[1]-5.5 ``data``."""
    text = ORU.decode("utf-8").replace("\r\n", "\r").replace("\n", "\r").rstrip("\r")
    segs = text.split("\r")
    for i, seg in enumerate(segs):
        fields = seg.split("|")
        if seg.startswith("MSH|"):
            fields[9] = control_id
        elif seg.startswith("OBX|1|ED|"):
            components = fields[5].split("^")
            components[4] = data
            fields[5] = "^".join(components)
        segs[i] = "|".join(fields)
    return ("\r".join(segs) + "\r").encode("utf-8")


def _unpadded(cda: bytes) -> str:
    return base64.b64encode(cda).decode("ascii").rstrip("=")


def _ack_code(ack: bytes) -> str:
    return [s for s in ack.decode().split("\r") if s.startswith("MSA")][0].split("|")[1]


def _json(path: Path, *args: str) -> Any:
    res = CliRunner().invoke(cli, [*args, "-c", str(path), "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_cisis_documents_through_the_engine(tmp_path: Path) -> None:
    other = CDA.replace(f'extension="{INS}"'.encode(), b'extension="180012B01234567"', 1)
    assert other != CDA
    with smtp_server() as inbox, MllpPeer() as dmp:
        path = tmp_path / "routes.yaml"
        path.write_text(ROUTES.format(data=tmp_path / "var", dmp=dmp.port, smtp=inbox.port))
        with EngineThread(path) as eng, MLLPClient("127.0.0.1", eng.port("labo")) as c:
            assert _ack_code(c.send_message(_oru("PAD1", _unpadded(CDA)))) == "AA"
            assert _ack_code(c.send_message(_oru("OTHER2", _unpadded(other)))) == "AA"
            assert _ack_code(c.send_message(_oru("BAD3", "not*base64"))) == "AA"
            assert dmp.wait_for(lambda s: s.control_ids() == ["PAD1"], 10)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not inbox.mails:
                time.sleep(0.05)
            status: dict[str, Any] = {}
            while time.monotonic() < deadline and len(status) < 3:
                status = {r["control_id"]: r for r in _json(path, "messages", "list")}
                time.sleep(0.05)
        anomalies = _json(path, "identity", "anomalies")
        journeys = {
            cid: _json(path, "messages", "show", str(row["id"]))["events"]
            for cid, row in status.items()
        }
    assert dmp.control_ids() == ["PAD1"]  # neither another patient's report nor an unreadable one
    assert {cid: r["status"] for cid, r in status.items()} == {
        "PAD1": "processed",
        "OTHER2": "rejected",
        "BAD3": "rejected",
    }
    warning = "OBX[1]-5.5: base64 without its final '=' padding, decoded as if padded"
    assert ("warning", warning) in {(e["kind"], e["detail"]) for e in journeys["PAD1"]}
    assert ("warning", warning) in {(e["kind"], e["detail"]) for e in journeys["OTHER2"]}
    assert ("rejected", "OBX[1]-5.5: the ED data is not valid base64") in {
        (e["kind"], e["detail"]) for e in journeys["BAD3"]
    }
    assert [(a["control_id"], a["rule"], a["severity"], a["facility"]) for a in anomalies] == [
        ("OTHER2", "CDA-PATIENT-DIFFERENT", "reject", "labo")
    ]
    (mail,) = inbox.mails
    body = mail.get_content()
    assert "CDA-PATIENT-DIFFERENT" in body and "OTHER2" in body
    assert "Différence constatée : l'INS." in " ".join(body.split())
    assert mail["To"] == "interop@labo.test"
    for secret in ("PAT-TROIS", "DOMINIQUE", "19790328", INS, "180012B01234567"):
        assert secret not in body + str(mail["Subject"])
