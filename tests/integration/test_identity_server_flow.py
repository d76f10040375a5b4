"""Reconciliation through a running engine, with the identity-server stand-in on a real
socket (it checks each request against the PDQm/PIXm shapes), MLLP peers and a real SMTP
server (aiosmtpd): a matched identity is delivered and cross-referenced, a contradicted
trait is held with its rule, an outage holds then delivers and alerts, and an A40 merge
re-keys the ordering of the merged patient's deliveries."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hl7.client import MLLPClient
from sqlalchemy import text

from eai.cli import cli
from eai.identity_gate import SERVER_UNAVAILABLE
from standins.mllp import MllpPeer, ack_for, msh10
from standins.net import free_port
from tests._database import database_url, on_test_database
from tests._identity_server import REGIONAL, SECRETS, StandinThread, service
from tests._journal_db import journal_db
from tests._paths import HL7V2, REPO
from tests._proc import EAI, listener_port, wait_port
from tests._smtp import Inbox, smtp_server
from tests.engine_harness import A01, EngineThread, adt

pytestmark = pytest.mark.integration


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    with smtp_server() as server:
        yield server, server.port


ROUTES = """
engine: {{data_dir: {data}}}
listeners:
  - {{name: chu-x, type: mllp, bind: "127.0.0.1:0", test_feed: true}}
destinations:
  - name: dcc
    type: mllp
    host: 127.0.0.1
    port: {dcc}
    connections: 2
    retry: {{initial: 0.05s, max: 0.2s}}
  - name: dmp
    type: mllp
    host: 127.0.0.1
    port: {dmp}
    require_qualified_identity: true
    retry: {{initial: 0.05s, max: 0.2s}}
routes:
  - {{name: all, from: [chu-x], to: [dcc, dmp]}}
identity:
  contacts: {{CHU-X: [interop@chu-x.test]}}
  smtp: {{host: 127.0.0.1, port: {smtp}, sender: eai@grades.test}}
  digest_every: 1h
{server}
"""

SERVER = """  server:
    url: {url}
    regional_id_system: "{regional}"
    connect_timeout: 0.5s
    timeout: 2s
    outage_backoff: 0.2s
    retry_every: 0.3s
    alert_to: [exploitation@grades.test]
"""


def _routes(tmp: Path, dcc: int, dmp: int, smtp: int, server_url: str | None) -> Path:
    server = SERVER.format(url=server_url, regional=REGIONAL) if server_url else ""
    path = tmp / "routes.yaml"
    path.write_text(
        ROUTES.format(data=tmp / "var", dcc=dcc, dmp=dmp, smtp=smtp, server=server),
        encoding="utf-8",
    )
    return on_test_database(path)  # its journal where the CLI, run before the engine, looks


def _ack_code(ack: bytes) -> str:
    return [s for s in ack.decode().split("\r") if s.startswith("MSA")][0].split("|")[1]


def _cli_json(path: Path, *args: str) -> Any:
    res = CliRunner().invoke(cli, [*args, "-c", str(path), "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def _wait(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _deliveries(path: Path, destination: str) -> dict[str, dict[str, Any]]:
    rows = _cli_json(path, "messages", "list")
    return {
        r["control_id"]: d for r in rows for d in r["deliveries"] if d["destination"] == destination
    }


def test_a_matched_identity_is_delivered_and_cross_referenced(tmp_path, inbox):
    _, smtp = inbox
    svc = service()
    with (
        StandinThread(svc, free_port()) as standin,
        MllpPeer() as dcc,
        MllpPeer() as dmp,
    ):
        path = _routes(tmp_path, dcc.port, dmp.port, smtp, standin.url)
        with EngineThread(path) as eng, MLLPClient("127.0.0.1", eng.port("chu-x")) as c:
            assert _ack_code(c.send_message(A01)) == "AA"
            assert dmp.wait_for(lambda s: s.control_ids() == ["3975"], 15)
            assert dcc.wait_for(lambda s: s.control_ids() == ["3975"], 15)
        view = _cli_json(path, "identity", "lookup", "--facility", "CHU-X", "--local-id", "000003")
        assert view["regional_id"] == "R0001" and view["ins"] == "279035121518989"
        assert _cli_json(path, "identity", "anomalies") == []
    assert svc.violations == []  # every request had the PDQm/PIXm shape
    assert any("/Patient" in target for _, target, _ in svc.requests)


def test_a_trait_the_server_contradicts_is_held_for_the_dmp_and_reported(tmp_path, inbox):
    _, smtp = inbox
    svc = service()
    wrong_date = A01.replace(b"|19790328|", b"|19790329|")
    with (
        StandinThread(svc, free_port()) as standin,
        MllpPeer() as dcc,
        MllpPeer() as dmp,
    ):
        path = _routes(tmp_path, dcc.port, dmp.port, smtp, standin.url)
        with EngineThread(path) as eng, MLLPClient("127.0.0.1", eng.port("chu-x")) as c:
            assert _ack_code(c.send_message(wrong_date)) == "AA"
            assert dcc.wait_for(lambda s: s.control_ids() == ["3975"], 15)
            time.sleep(0.5)
            assert dmp.control_ids() == []
        held = _deliveries(path, "dmp")["3975"]
        assert held["status"] == "held"
        anomalies = _cli_json(path, "identity", "anomalies")
        assert [a["rule"] for a in anomalies] == ["SERVEUR-DATE-NAISSANCE"]
        assert anomalies[0]["facility"] == "CHU-X"
        assert "date de naissance" in anomalies[0]["explanation"]
    assert svc.violations == []


def test_server_down_holds_then_delivers_and_alerts_both_ways(tmp_path, inbox, caplog):
    mails, smtp = inbox
    svc = service()
    port = free_port()
    standin = StandinThread(svc, port)  # not started: the server is down
    try:
        with MllpPeer() as dcc, MllpPeer() as dmp:
            path = _routes(tmp_path, dcc.port, dmp.port, smtp, standin.url)
            with EngineThread(path) as eng, MLLPClient("127.0.0.1", eng.port("chu-x")) as c:
                # acknowledged and sent where no qualified identity is needed
                assert _ack_code(c.send_message(A01)) == "AA"
                assert _ack_code(c.send_message(adt("A2", trigger="A08"))) == "AA"
                assert dcc.wait_for(lambda s: s.control_ids() == ["3975", "A2"], 15)
                assert _wait(lambda: len(mails.mails) >= 1)
                time.sleep(0.8)  # a few retries while it is still down
                assert dmp.control_ids() == []
                dmp_rows = _deliveries(path, "dmp")
                assert {r["status"] for r in dmp_rows.values()} == {"held"}
                assert {r["last_error"] for r in dmp_rows.values()} == {SERVER_UNAVAILABLE}
                # the server comes back: reconciled, released, delivered in order
                standin.start()
                assert dmp.wait_for(lambda s: s.control_ids() == ["3975", "A2"], 15)
                assert _wait(lambda: len(mails.mails) >= 2)
                # a new message while it is up goes straight through
                assert _ack_code(c.send_message(adt("A3", trigger="A08"))) == "AA"
                assert dmp.wait_for(lambda s: len(s.received) == 3, 15)
            assert _cli_json(path, "identity", "anomalies") == []  # nothing for CHU-X to fix
            view = _cli_json(
                path, "identity", "lookup", "--facility", "CHU-X", "--local-id", "000003"
            )
            assert view["regional_id"] == "R0001"
    finally:
        standin.close()
    assert svc.violations == []
    subjects = [str(m["Subject"]) for m in mails.mails]
    assert len(mails.mails) == 2, subjects  # one at the start, one at the end: not per message
    assert "injoignable" in subjects[0] and "de nouveau joignable" in subjects[1]
    assert all(m["To"] == "exploitation@grades.test" for m in mails.mails)
    for m in mails.mails:
        assert not any(s in m.get_content() for s in SECRETS)
    assert not any(s in caplog.text for s in SECRETS)


def _mrg(message: bytes, prior: str) -> bytes:
    return message.rstrip(b"\r") + f"\rMRG|{prior}^^^CHU-X&000897406&N^PI\r".encode()


def _patient_keys(path: Path, destination: str) -> dict[str, str]:
    with journal_db(path) as db:
        rows = db.execute(
            text(
                "SELECT m.control_id, d.patient_key FROM deliveries d "
                "JOIN messages m ON m.id = d.message_id WHERE d.destination = :destination"
            ),
            {"destination": destination},
        ).all()
    return {control_id: key for control_id, key in rows}


def test_a40_merge_rekeys_the_merged_patient_behind_the_surviving_one(tmp_path, inbox):
    _, smtp = inbox
    refused = {"S1": 3}  # the surviving patient's first message is refused (AE) 3 times

    def answer(payload: bytes) -> bytes:
        control_id = msh10(payload)
        if refused.get(control_id, 0) > 0:
            refused[control_id] -= 1
            return ack_for(payload, "AE")
        return ack_for(payload, "AA")

    with MllpPeer(answer) as dcc, MllpPeer() as dmp:
        path = _routes(tmp_path, dcc.port, dmp.port, smtp, None)  # merges need no server
        runner = CliRunner()
        pause = runner.invoke(cli, ["queue", "pause", "dcc", "-c", str(path)])
        assert pause.exit_code == 0, pause.output
        with EngineThread(path) as eng, MLLPClient("127.0.0.1", eng.port("chu-x")) as c:
            for message in (
                adt("M1", "000099"),  # the patient about to be merged
                adt("S1", "000003"),  # the surviving patient
                _mrg(adt("X1", "000003", trigger="A40"), "000099"),
                adt("M2", "000099", trigger="A08"),  # the old id, after the merge
            ):
                assert _ack_code(c.send_message(message)) == "AA"
            assert _wait(lambda: len(_patient_keys(path, "dcc")) == 4)
            keys = _patient_keys(path, "dcc")
            assert len(set(keys.values())) == 1, "one ordering key after the merge"
            resume = runner.invoke(cli, ["queue", "resume", "dcc", "-c", str(path)])
            assert resume.exit_code == 0, resume.output
            assert dcc.wait_for(lambda s: len(set(s.control_ids())) == 4, 20)
        # each message's accepted (last) delivery, in order: M2 waited behind S1, refused
        # then retried, although two connections were open
        delivered = list(dict.fromkeys(reversed(dcc.control_ids())))[::-1]
        assert delivered == ["M1", "S1", "X1", "M2"], dcc.control_ids()
        view = _cli_json(path, "identity", "lookup", "--facility", "CHU-X", "--local-id", "000099")
        assert view["stands_for"]  # merged into the surviving local id


# --- the bundled demo, through the commands the README gives ---------------------------


def test_the_bundled_identity_demo_runs_from_the_cli(tmp_path, inbox):
    _, smtp = inbox
    adt_port, identity_port = listener_port(), listener_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("EAI_")},
        "EAI_DATA_DIR": str(tmp_path / "var"),
        "EAI_DATABASE_URL": database_url(tmp_path / "var" / "eai.db"),
        "ADT_PORT": str(adt_port),
        "IDENTITY_PORT": str(identity_port),
        "SMTP_PORT": str(smtp),
        "IDENTITY_RETRY": "0.3s",
    }
    demo = REPO / "examples" / "identity-routes.yaml"
    with MllpPeer() as dcc, MllpPeer() as dmp:
        env |= {"DCC_PORT": str(dcc.port), "DMP_PORT": str(dmp.port)}
        standin = subprocess.Popen(
            [*EAI, "identity", "standin", "--port", str(identity_port)]
            + ["--patients", str(REPO / "examples" / "identity-patients.json")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        engine = subprocess.Popen(
            [*EAI, "run", "-c", str(demo)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            cwd=tmp_path,
        )
        try:
            assert wait_port(identity_port, 20, lambda: standin.poll() is None)
            assert wait_port(adt_port, 30, lambda: engine.poll() is None)
            sent = subprocess.run(
                [*EAI, "send", f"127.0.0.1:{adt_port}", str(HL7V2 / "pamfr_a01_admission.er7")],
                capture_output=True,
                env=env,
                timeout=60,
            )
            assert sent.returncode == 0 and b"MSA|AA|3975" in sent.stdout, sent
            assert dmp.wait_for(lambda s: s.control_ids() == ["3975"], 20)
            assert dcc.wait_for(lambda s: s.control_ids() == ["3975"], 20)
            lookup = subprocess.run(
                [*EAI, "identity", "lookup", "--facility", "CHU-X", "--local-id", "000003"]
                + ["--json", "-c", str(demo)],
                capture_output=True,
                env=env,
                timeout=60,
            )
            assert lookup.returncode == 0, lookup.stderr
            assert json.loads(lookup.stdout)["regional_id"] == "R0001"
        finally:
            for proc in (engine, standin):
                proc.send_signal(signal.SIGTERM)
            _, err = engine.communicate(timeout=30)
            standin.communicate(timeout=30)
    assert engine.returncode == 0, err.decode()[-2000:]
    assert not any(s.encode() in err for s in SECRETS)  # no patient data at the default level
