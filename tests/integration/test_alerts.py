"""Technical alerts against a real SMTP server (aiosmtpd): one mail when a destination
fails, one when it recovers, none repeated by a restart, one across two nodes on
PostgreSQL, none under a silence (which the audit trail records); certificate expiry
from a short-lived certificate."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner

from eai.alerts import Alerter, Signals
from eai.cli import cli
from eai.config import load_config
from eai.store import Store, list_alerts
from standins.mllp import MllpPeer
from standins.net import free_port
from tests._database import database_url
from tests._mllp import MllpSender, msa
from tests._pki import make_pki
from tests._smtp import Inbox, smtp_server
from tests.engine_harness import EngineThread, adt, write_routes

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

REGION = "exploitation@grades.test"
CHU_X = "interop@chu-x.test"
ALERTS = """
identity:
  contacts: {{CHU-X: [{chu_x}]}}
  smtp: {{host: 127.0.0.1, port: {smtp}, sender: eai@grades.test}}
alerts:
  notify: [{region}]
  every: 0.3s
  group_wait: 1s
  repeat_every: 1h
  rules:
    - {{rule: destination_failing, after: 2s}}
    - {{rule: queue_age, max_age: 3s}}
"""


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    with smtp_server() as server:
        yield server


def _routes(tmp: Path, dcc_port: int, smtp: int, database: str | None = None) -> Path:
    extra = ALERTS.format(chu_x=CHU_X, smtp=smtp, region=REGION)
    return write_routes(tmp, dcc_port, database, extra=extra)


def _wait(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def _to(inbox: Inbox, who: str) -> list[EmailMessage]:
    return [m for m in inbox.mails if m["To"] == who]


def _send(port: int, count: int, prefix: str = "M") -> None:
    with MllpSender(port) as sender:
        for i in range(count):
            code, _ = msa(sender.exchange(adt(f"{prefix}{i}", patient=f"{i:06d}")))
            assert code == "AA"


def _subjects(inbox: Inbox, who: str) -> list[str]:
    return [str(m["Subject"]) for m in _to(inbox, who)]


def _cli_json(path: Path, *args: str) -> object:
    result = CliRunner().invoke(cli, [*args, "-c", str(path), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_a_destination_down_mails_once_firing_and_once_resolved(tmp_path, inbox):
    dcc_port = free_port()  # nothing listens: connections refused
    path = _routes(tmp_path, dcc_port, inbox.port)
    with EngineThread(path) as eng:
        _send(eng.port("chu-x-adt"), 200)
        assert _wait(lambda: all(_to(inbox, w) for w in (REGION, CHU_X))), inbox.mails
        time.sleep(3)  # still down: evaluated ten times more, nothing mailed again
        assert [len(_to(inbox, w)) for w in (REGION, CHU_X)] == [1, 1]
        with MllpPeer(port=dcc_port) as dcc:
            assert _wait(lambda: len(dcc.control_ids()) == 200, 60)
            assert _wait(lambda: all(len(_to(inbox, w)) == 2 for w in (REGION, CHU_X)))
            time.sleep(2)  # drained: nothing more
    for who in (REGION, CHU_X):
        firing, resolved = _to(inbox, who)
        assert firing["Subject"] == "[eai] Alerte : destination dcc en échec"
        assert resolved["Subject"] == "[eai] Résolue : destination dcc en échec"
        body = firing.get_content()
        assert re.search(r"\b\d+ message\(s\) en attente", body)  # 200 once all are queued
        assert "eai queue list" in body
        assert "[EN COURS]" in body and "[RÉSOLUE]" in resolved.get_content()
        # inhibited: the queue's age is caused by the destination being down
        assert "file d'attente" not in body
        assert "M0" not in body and "000001" not in body  # no control id, no patient id
    rows = {(r["rule"], r["scope"]): r for r in _cli_json(path, "alerts", "list")["alerts"]}
    failing = rows[("destination_failing", "destination:dcc")]
    assert failing["state"] == "resolved" and failing["mails"] == 2
    assert rows[("queue_age", "destination:dcc")]["mails"] == 0


def test_a_restart_while_firing_sends_nothing_new(tmp_path, inbox):
    dcc_port = free_port()
    path = _routes(tmp_path, dcc_port, inbox.port)
    with EngineThread(path) as eng:
        _send(eng.port("chu-x-adt"), 5)
        assert _wait(lambda: len(_to(inbox, REGION)) == 1)
    # stopped at once: the mail being sent was finished, and marked sent
    assert [len(_to(inbox, w)) for w in (REGION, CHU_X)] == [1, 1]
    with EngineThread(path) as eng:
        time.sleep(3)  # ten evaluations of the same firing alert, from the journal
        rows = list_alerts(eng.engine.store.engine)  # type: ignore[union-attr]
    states = {r.rule: (r.state, r.mails) for r in rows}
    # the queue's age fires too, inhibited: never mailed
    assert states == {"destination_failing": ("firing", 1), "queue_age": ("firing", 0)}
    assert [len(_to(inbox, w)) for w in (REGION, CHU_X)] == [1, 1]


def test_a_silence_suppresses_the_mails_and_is_recorded(tmp_path, inbox):
    dcc_port = free_port()
    path = _routes(tmp_path, dcc_port, inbox.port)
    silenced = CliRunner().invoke(
        cli,
        [
            "alerts", "silence", "destination_failing", "--scope", "destination:dcc",
            "--for", "2h", "--reason", "maintenance du DCC", "-c", str(path),
        ],
    )  # fmt: skip
    assert silenced.exit_code == 0, silenced.output
    with EngineThread(path) as eng:
        _send(eng.port("chu-x-adt"), 5)
        assert _wait(
            lambda: any(
                r.state == "firing"
                for r in list_alerts(eng.engine.store.engine)  # type: ignore[union-attr]
            )
        )
        time.sleep(2.5)  # past group_wait: nothing sent
    assert inbox.mails == []
    listed = _cli_json(path, "alerts", "list")
    [silence] = listed["silences"]
    assert silence["rule"] == "destination_failing" and silence["scope"] == "destination:dcc"
    assert silence["reason"] == "maintenance du DCC" and silence["author"]
    [audited] = [r for r in _cli_json(path, "audit", "list") if r["action"] == "silence"]
    assert audited["actor"]["name"] == silence["author"] and audited["actor"]["via"] == "cli"
    assert audited["target"] == "destination_failing destination:dcc"
    assert "maintenance du DCC" in audited["detail"]
    verified = CliRunner().invoke(cli, ["audit", "verify", "-c", str(path)])
    assert verified.exit_code == 0, verified.output


def test_the_cli_refuses_an_unknown_rule_and_a_bad_duration(tmp_path, inbox):
    path = _routes(tmp_path, free_port(), inbox.port)
    for args, problem in (
        (["no_such_rule", "--for", "1h"], "no_such_rule"),
        (["queue_age", "--for", "soon"], "--for"),
    ):
        result = CliRunner().invoke(
            cli, ["alerts", "silence", *args, "--reason", "x", "-c", str(path)]
        )
        assert result.exit_code == 2 and problem in result.output, result.output


@pytest.mark.postgres
def test_two_nodes_on_postgresql_send_each_mail_once(tmp_path, inbox, fresh_postgres_db):
    dcc_port = free_port()
    key = "a" * 64
    paths = []
    for node in ("node-a", "node-b"):
        (tmp_path / node).mkdir()
        path = _routes(tmp_path / node, dcc_port, inbox.port, fresh_postgres_db)
        text = path.read_text().replace("engine:\n", f"engine:\n  node_id: {node}\n", 1)
        path.write_text(text)
        paths.append(path)
    with EngineThread(paths[0], key=key) as a, EngineThread(paths[1], key=key):
        _send(a.port("chu-x-adt"), 20)
        assert _wait(lambda: all(_to(inbox, w) for w in (REGION, CHU_X)))
        time.sleep(2.5)  # both nodes evaluate; the second finds the mail owed and sent
        assert [len(_to(inbox, w)) for w in (REGION, CHU_X)] == [1, 1]
        with MllpPeer(port=dcc_port) as dcc:
            assert _wait(lambda: len(dcc.control_ids()) == 20, 60)
            assert _wait(lambda: all(len(_to(inbox, w)) == 2 for w in (REGION, CHU_X)))
            time.sleep(2.5)
    assert [len(_to(inbox, w)) for w in (REGION, CHU_X)] == [2, 2]
    assert all("Résolue" in s[1] for s in (_subjects(inbox, REGION), _subjects(inbox, CHU_X)))


def test_certificate_expiry_from_a_short_lived_certificate(tmp_path, inbox):
    pki = make_pki(tmp_path / "pki")  # valid one day
    path = write_routes(tmp_path, free_port())
    text = path.read_text().replace(
        "    test_feed: true",
        f"    test_feed: true\n    tls: {{cert: {pki.server_cert}, key: {pki.server_key}}}",
        1,
    )
    rules = "alerts:\n  rules:\n    - {rule: cert_expiry, within: %s}\n"
    store = Store(database_url(tmp_path / "var" / "eai.db"), tmp_path / "var")
    try:
        for within, state in (("12h", "ok"), ("2d", "firing")):
            path.write_text(text + rules % within)
            config = load_config(path, env={})
            alerter = Alerter(store, config, "n1", Signals(), dict, lambda: False)
            alerter.evaluate()
            [row] = [r for r in list_alerts(store.engine) if r.rule == "cert_expiry"]
            assert (row.scope, row.state) == ("listener:chu-x-adt", state)
        assert "tls.cert (server.crt) : expire dans 23 h" in row.value
    finally:
        store.engine.dispose()


def test_a_reload_that_adds_alerts_starts_them(tmp_path, inbox):
    dcc_port = free_port()
    path = write_routes(tmp_path, dcc_port)
    with EngineThread(path) as eng:
        _send(eng.port("chu-x-adt"), 3)
        time.sleep(1)
        assert eng.engine.store is not None
        assert list_alerts(eng.engine.store.engine) == []  # no alerts: section, no rule
        path.write_text(
            path.read_text() + ALERTS.format(chu_x=CHU_X, smtp=inbox.port, region=REGION)
        )
        loop = eng._loop
        assert loop is not None
        asyncio.run_coroutine_threadsafe(eng.engine.reload("test"), loop).result(30)
        assert _wait(lambda: all(_to(inbox, w) for w in (REGION, CHU_X)))
    assert _subjects(inbox, REGION) == ["[eai] Alerte : destination dcc en échec"]
