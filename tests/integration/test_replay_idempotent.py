"""eai replay of a rejected message: its identity anomalies are recorded and mailed once,
each replay leaves a ``replayed`` event (who, status before, config path and SHA-256),
and --dry-run writes nothing and does not say "replaying" (real engine, SMTP, MLLP)."""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hl7.client import MLLPClient

from eai.cli import cli
from standins.mllp import MllpPeer
from tests._smtp import smtp_server
from tests.engine_harness import A01, EngineThread

pytestmark = pytest.mark.integration

ROUTES = """
engine: {{data_dir: {data}}}
listeners:
  - {{name: chu-x, type: mllp, bind: "127.0.0.1:0", test_feed: true}}
destinations:
  - {{name: dcc, type: mllp, host: 127.0.0.1, port: {dcc}, retry: {{initial: 0.05s, max: 0.2s}}}}
routes:
  - {{name: all, from: [chu-x], to: [dcc]}}
identity:
  contacts: {{CHU-X: [interop@chu-x.test]}}
  smtp: {{host: 127.0.0.1, port: {smtp}, sender: eai@grades.test}}
  digest_every: 1h
"""


def _bad_ins_key(control_id: str) -> bytes:
    """The national A01 with MSH-10 ``control_id`` and an INS whose key is wrong."""
    text = A01.decode().replace("\r\n", "\r").replace("\n", "\r").rstrip("\r")
    segs = text.split("\r")
    msh = segs[0].split("|")
    msh[9] = control_id
    segs[0] = "|".join(msh)
    segs[2] = segs[2].replace("279035121518989", "279035121518988")
    return ("\r".join(segs) + "\r").encode()


def _run(path: Path, *args: str) -> str:
    res = CliRunner().invoke(cli, [*args, "-c", str(path)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def _anomalies_of(path: Path, control_id: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(_run(path, "identity", "anomalies", "--json"))
    return [a for a in rows if a["control_id"] == control_id]


def test_replay_of_a_rejected_message_is_idempotent_and_journaled(tmp_path: Path) -> None:
    with smtp_server() as inbox, MllpPeer() as dcc:
        path = tmp_path / "routes.yaml"
        path.write_text(ROUTES.format(data=tmp_path / "var", dcc=dcc.port, smtp=inbox.port))
        with EngineThread(path) as eng, MLLPClient("127.0.0.1", eng.port("chu-x")) as c:
            c.send_message(_bad_ins_key("K9"))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not inbox.mails:
                time.sleep(0.05)
            assert len(inbox.mails) == 1
            (row,) = json.loads(_run(path, "messages", "list", "--json"))
            assert row["status"] == "rejected"
            mid = str(row["id"])
            assert [a["rule"] for a in _anomalies_of(path, "K9")] == ["INS-CLE"]

            dry = _run(path, "replay", mid, "--dry-run")
            assert "replaying" not in dry and "rejected" in dry
            for _ in range(2):
                out = _run(path, "replay", mid, "--yes")
                assert f"message {mid}: rejected" in out
            assert [a["rule"] for a in _anomalies_of(path, "K9")] == ["INS-CLE"]
            # the urgent mailer and the digest find nothing new to mail
            mailer, loop = eng.engine.mailer, eng._loop
            assert mailer is not None and loop is not None
            mailer.urgent()
            time.sleep(0.5)
            asyncio.run_coroutine_threadsafe(mailer.digest(), loop).result(10)
        assert len(inbox.mails) == 1

        events = json.loads(_run(path, "messages", "show", mid, "--json"))["events"]
        replayed = [e["detail"] for e in events if e["kind"] == "replayed"]
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert len(replayed) == 2  # the two real replays; the dry run wrote nothing
        for detail in replayed:
            assert f"by {getpass.getuser()} (was rejected)" in detail
            assert f"{path.resolve()} sha256:{digest}" in detail
        kinds = [e["kind"] for e in events]
        first = kinds.index("replayed")
        assert kinds[first + 1 :].count("rejected") >= 1  # the replay's own outcome follows
        assert dcc.received == []
