"""Identity checks through a running engine: held until qualified, charter rejects
mailed at once, digests per establishment (real SMTP server: aiosmtpd)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from click.testing import CliRunner
from hl7.client import MLLPClient

from eai.cli import cli
from standins.mllp import MllpPeer
from standins.net import free_port
from tests._identity_routes import HELD_ROUTES, identity_msg
from tests._smtp import smtp_server
from tests.engine_harness import EngineThread

pytestmark = pytest.mark.integration


IDENTITY = """\
identity:
  contacts: {{CHU-X: [interop@chu-x.test]}}
  smtp: {{host: 127.0.0.1, port: {smtp}, sender: eai@grades.test}}
  digest_every: {digest}
"""
ROUTES = HELD_ROUTES + IDENTITY


def _ack_code(ack: bytes) -> str:
    return [s for s in ack.decode().split("\r") if s.startswith("MSA")][0].split("|")[1]


def _json(path, *args):
    res = CliRunner().invoke(cli, [*args, "-c", str(path), "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_held_until_qualified_then_released_in_order_and_mails(tmp_path):
    with smtp_server() as smtp:
        inbox = smtp
        with MllpPeer() as dcc, MllpPeer() as dmp:
            path = tmp_path / "routes.yaml"
            path.write_text(
                ROUTES.format(
                    data=tmp_path / "var", dcc=dcc.port, dmp=dmp.port, smtp=smtp.port, digest="1h"
                )
            )
            with EngineThread(path) as eng, MLLPClient("127.0.0.1", eng.port("chu-x")) as c:
                # PROV + INS = RECUP: acknowledged, delivered to DCC, held for the DMP
                assert _ack_code(c.send_message(identity_msg("H1", pid32="PROV"))) == "AA"
                assert dcc.wait_for(lambda s: s.control_ids() == ["H1"], 10)
                time.sleep(0.5)
                assert dmp.control_ids() == []
                q = {x["destination"]: x for x in _json(path, "queue", "list")}
                assert q["dmp"]["held"] == 1
                # a later message of the same patient waits behind the held one
                assert (
                    _ack_code(c.send_message(identity_msg("H2", pid32="PROV", trigger="A08")))
                    == "AA"
                )
                time.sleep(0.3)
                assert dmp.control_ids() == []
                # a message that qualifies the identity releases them, in order
                assert (
                    _ack_code(c.send_message(identity_msg("Q3", pid32="VALI", trigger="A08")))
                    == "AA"
                )
                assert dmp.wait_for(lambda s: len(s.received) >= 3, 10)
                assert dmp.control_ids() == ["H1", "H2", "Q3"]

                # a bad INS key: acknowledged (safe), routed nowhere, mailed at once
                assert _ack_code(c.send_message(identity_msg("K4", ins="279035121518988"))) == "AA"
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and not any(
                    "INS-CLE" in m.get_content() for m in inbox.mails
                ):
                    time.sleep(0.05)
                # the period's digest carries the hold anomalies (run now, not in an hour)
                asyncio.run_coroutine_threadsafe(eng.engine.mailer.digest(), eng._loop).result(10)
            rows = _json(path, "messages", "list")
            status = {r["control_id"]: r["status"] for r in rows}
            assert status["K4"] == "rejected"
            assert "K4" not in dcc.control_ids() and "K4" not in dmp.control_ids()
            anomalies = _json(path, "identity", "anomalies")
            rules = {(a["control_id"], a["rule"]) for a in anomalies}
            assert ("K4", "INS-CLE") in rules
            assert ("H1", "IDENTITE-NON-QUALIFIEE") in rules
            assert all(a["facility"] == "CHU-X" for a in anomalies)
    immediate = [m for m in inbox.mails if "Rejet imm" in str(m["Subject"])]
    digests = [m for m in inbox.mails if "Synth" in str(m["Subject"])]
    assert len(immediate) == 1 and "INS-CLE" in immediate[0].get_content()
    assert "K4" in immediate[0].get_content()
    assert digests, [m["Subject"] for m in inbox.mails]
    body = digests[0].get_content()
    assert "IDENTITE-NON-QUALIFIEE" in body and "2 message(s)" in body
    assert digests[0]["To"] == "interop@chu-x.test"
    for m in inbox.mails:  # no patient data in mails
        text = m.get_content() + str(m["Subject"])
        for secret in ("PAT-TROIS", "DOMINIQUE", "19790328", "279035121518989"):
            assert secret not in text


def test_operator_releases_a_held_delivery(tmp_path):
    with MllpPeer() as dcc, MllpPeer() as dmp:
        path = tmp_path / "routes.yaml"
        path.write_text(
            ROUTES.format(
                data=tmp_path / "var", dcc=dcc.port, dmp=dmp.port, smtp=free_port(), digest="1h"
            )
        )
        with EngineThread(path) as eng, MLLPClient("127.0.0.1", eng.port("chu-x")) as c:
            assert _ack_code(c.send_message(identity_msg("P1", pid32="PROV"))) == "AA"
            assert dcc.wait_for(lambda s: len(s.received) == 1, 10)
            msg = _json(path, "messages", "list")[0]
            held = [d for d in msg["deliveries"] if d["status"] == "held"]
            assert [d["destination"] for d in held] == ["dmp"]
            res = CliRunner().invoke(
                cli, ["identity", "release", str(held[0]["id"]), "-c", str(path)]
            )
            assert res.exit_code == 0, res.output
            assert dmp.wait_for(lambda s: s.control_ids() == ["P1"], 10)
            audited = CliRunner().invoke(
                cli, ["audit", "list", "--json", "--action", "identity-release", "-c", str(path)]
            )
            [record] = json.loads(audited.output)
            assert record["target"] == f"delivery {held[0]['id']}"
            assert record["message_id"] == msg["id"] and record["patient"]  # keyed hashes
            again = CliRunner().invoke(
                cli, ["identity", "release", str(held[0]["id"]), "-c", str(path)]
            )
            assert again.exit_code != 0 and "not held" in str(again.exception)


def test_digest_runs_on_schedule(tmp_path):
    with smtp_server() as smtp:
        inbox = smtp
        with MllpPeer() as dcc, MllpPeer() as dmp:
            path = tmp_path / "routes.yaml"
            path.write_text(
                ROUTES.format(
                    data=tmp_path / "var", dcc=dcc.port, dmp=dmp.port, smtp=smtp.port, digest="0.5s"
                )
            )
            with EngineThread(path) as eng, MLLPClient("127.0.0.1", eng.port("chu-x")) as c:
                assert _ack_code(c.send_message(identity_msg("S1", pid32="PROV"))) == "AA"
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and not inbox.mails:
                    time.sleep(0.05)
                time.sleep(1.2)  # later periods have nothing new: no second mail
    assert len(inbox.mails) == 1
    assert "IDENTITE-NON-QUALIFIEE" in inbox.mails[0].get_content()
