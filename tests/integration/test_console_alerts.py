"""The console's alerts page and silence action, the "down since" of the overview, and
``eai users`` changes in the audit trail, over real HTTP against an engine in a thread.

The alert rows are written as the alerter writes them (:func:`eai.store.update_alerts`).
"""

from __future__ import annotations

import getpass
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from eai.store import (
    AlertChanges,
    AlertRow,
    Silence,
    Store,
    list_audit,
    list_silences,
    update_alerts,
    utcnow,
)
from standins.mllp import MllpPeer
from tests._console_site import ConsoleSite, csrf_of
from tests.engine_harness import EngineThread, write_routes

pytestmark = pytest.mark.integration

CONSOLE = "console:\n  bind: 127.0.0.1:0\n"


class Site(ConsoleSite):
    def __init__(self, eng: EngineThread, path: Path) -> None:
        super().__init__(eng)
        self.path = path


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with MllpPeer() as sink:
        path = write_routes(tmp_path, sink.port, extra=CONSOLE)
        with EngineThread(path) as eng:
            s = Site(eng, path)
            s.add_accounts()
            yield s


def _seed_alerts(store: Store) -> None:
    now = utcnow()
    rows = [
        AlertRow("listener_down", "listener:chu-x-adt@node-1", "firing", now,
                 fired_at=now - timedelta(minutes=3), value="port 1 : n'écoute pas"),
        AlertRow("destination_failing", "destination:dcc", "pending", now - timedelta(minutes=1),
                 value="3 message(s) en attente"),
        AlertRow("queue_age", "destination:dcc", "resolved", now, resolved_at=now),
        AlertRow("disk_usage", "engine:data_dir", "ok", now),
    ]  # fmt: skip
    update_alerts(store.engine, lambda _rows, _silences, _now: AlertChanges(rows=rows))


def test_viewer_sees_the_alerts_but_cannot_silence(site: Site) -> None:
    _seed_alerts(site.store)
    with site.client("vera") as c:
        page = c.get("/alerts")
        assert page.status_code == 200
        alerts = re.findall(r'data-rule="([^"]+)" data-scope="([^"]+)"', page.text)
        assert alerts == [
            ("listener_down", "listener:chu-x-adt@node-1"),
            ("destination_failing", "destination:dcc"),
            ("queue_age", "destination:dcc"),
        ]  # firing, pending, resolved; "ok" rows are not news
        assert "point d&#39;entrée chu-x-adt fermé" in page.text  # the mails' French title
        assert "/alerts/silence" not in page.text
        refused = c.post(
            "/alerts/silence",
            data={"csrf": csrf_of(page.text), "rule": "listener_down", "scope": "",
                  "for": "1h", "reason": "x", "confirm": "yes"},
        )  # fmt: skip
        assert refused.status_code == 403
        rows = c.get("/overview/rows").text
    assert not list_silences(site.store.engine)
    listener = re.search(r'<tr data-name="chu-x-adt">.*?</tr>', rows, re.S)
    assert listener and "down since" in listener.group(0)
    dest = re.search(r'<tr data-name="dcc">.*?</tr>', rows, re.S)
    assert dest and "failing since" in dest.group(0)


def test_operator_silences_with_confirmation_and_the_audit_names_the_account(site: Site) -> None:
    _seed_alerts(site.store)
    with site.client("otto") as c:
        page = c.get("/alerts")
        assert 'action="/alerts/silence"' in page.text
        csrf = csrf_of(page.text)
        form = {"csrf": csrf, "rule": "listener_down", "scope": "listener:chu-x-adt",
                "for": "2h", "reason": "maintenance du serveur"}  # fmt: skip
        for bad in ({"rule": "no_such_rule"}, {"for": "soon"}, {"for": "0s"}, {"reason": " "}):
            r = c.post("/alerts/silence", data={**form, **bad, "confirm": "yes"})
            assert r.status_code == 400, bad
        first = c.post("/alerts/silence", data=form)
        assert first.status_code == 200 and 'id="confirm"' in first.text
        assert 'name="reason" value="maintenance du serveur"' in first.text
        assert not list_silences(site.store.engine)  # asked, not done
        done = c.post("/alerts/silence", data={**_hidden(first.text), "confirm": "yes"})
        assert done.status_code == 200 and "silence 1: listener_down" in done.text
        after = c.get("/alerts").text
    (silence,) = list_silences(site.store.engine)
    assert isinstance(silence, Silence)
    assert (silence.rule, silence.scope, silence.author) == (
        "listener_down", "listener:chu-x-adt", "otto"
    )  # fmt: skip
    left = (silence.ends_at - utcnow()).total_seconds()
    assert 7000 < left <= 7200
    row = re.search(r'data-rule="listener_down".*?</tr>', after, re.S)
    assert row and "#1" in row.group(0)  # the node-local alert is covered by the silence
    assert re.search(r'<td class="author">otto</td>', after)
    (rec,) = [r for r in list_audit(site.store.engine) if r.entry.action == "silence"]
    assert rec.actor.name == "otto" and rec.actor.kind == "account"
    assert rec.actor.via == "console" and rec.actor.peer == "127.0.0.1"
    assert rec.entry.target == "listener_down listener:chu-x-adt"
    assert "maintenance du serveur" in rec.entry.detail


def _hidden(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html))


def _users(path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EAI_")}
    return subprocess.run(
        [sys.executable, "-c", "from eai.cli import main; main()", "users", *args, "-c", str(path)],
        input=stdin, capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip


def test_users_changes_are_in_the_audit_trail_with_the_os_user(site: Site) -> None:
    steps = [
        (("add", "carl", "--role", "viewer"), "carl-pass-12345\n", "added, role viewer"),
        (("passwd", "carl", "--role", "operator"), "carl-pass-67890\n",
         "password set, unlocked, role operator"),
        (("disable", "carl"), "", "disabled"),
    ]  # fmt: skip
    for args, stdin, _ in steps:
        res = _users(site.path, *args, stdin=stdin)
        assert res.returncode == 0, res.stderr
    refused = _users(site.path, "disable", "nobody")
    assert refused.returncode != 0
    rows = [r for r in list_audit(site.store.engine) if r.entry.action == "account-change"]
    assert [r.entry.detail for r in reversed(rows)] == [s[2] for s in steps]
    for r in rows:
        assert r.entry.target == "account carl" and r.entry.outcome == "success"
        assert r.actor.kind == "os-user" and r.actor.name == getpass.getuser()
        assert "carl-pass" not in r.entry.detail


def test_operator_ends_a_silence_early_with_confirmation_and_audit(site: Site) -> None:
    _seed_alerts(site.store)
    with site.client("otto") as c:
        csrf = csrf_of(c.get("/alerts").text)
        form = {"csrf": csrf, "rule": "queue_age", "scope": "destination:dcc", "for": "4h",
                "reason": "migration", "confirm": "yes"}  # fmt: skip
        assert c.post("/alerts/silence", data=form).status_code == 200
        (silence,) = list_silences(site.store.engine)
        page = c.get("/alerts").text
        url = f"/alerts/silences/{silence.id}/end"
        assert f'action="{url}"' in page
        assert c.post(url, data={"confirm": "yes"}).status_code == 403  # no CSRF token
        asked = c.post(url, data={"csrf": csrf})
        assert asked.status_code == 200 and 'id="confirm"' in asked.text
        assert "migration" in asked.text  # what is being ended
        assert list_silences(site.store.engine) == [silence]  # asked, not done
        done = c.post(url, data={"csrf": csrf, "confirm": "yes"})
        assert done.status_code == 200 and f"silence {silence.id} ended" in done.text
        assert not list_silences(site.store.engine)
        again = c.post(url, data={"csrf": csrf, "confirm": "yes"})
        assert again.status_code == 404  # no longer active
    (ended,) = list_silences(site.store.engine, expired=True)
    assert ended.ends_at <= utcnow() and ended.author == "otto"
    (rec,) = [r for r in list_audit(site.store.engine) if r.entry.action == "unsilence"]
    assert rec.actor.name == "otto" and rec.actor.kind == "account" and rec.actor.via == "console"
    assert rec.entry.target == "queue_age destination:dcc"
    assert f"silence {silence.id} ended" in rec.entry.detail and "migration" in rec.entry.detail


def test_viewer_cannot_end_a_silence(site: Site) -> None:
    _seed_alerts(site.store)
    with site.client("otto") as c:
        csrf = csrf_of(c.get("/alerts").text)
        form = {"csrf": csrf, "rule": "*", "scope": "", "for": "1h", "reason": "x",
                "confirm": "yes"}  # fmt: skip
        assert c.post("/alerts/silence", data=form).status_code == 200
    (silence,) = list_silences(site.store.engine)
    with site.client("vera") as c:
        page = c.get("/alerts").text
        assert "/end" not in page and 'class="silence"' in page
        r = c.post(
            f"/alerts/silences/{silence.id}/end", data={"csrf": csrf_of(page), "confirm": "yes"}
        )
        assert r.status_code == 403
    assert list_silences(site.store.engine) == [silence]


def _alerts_cli(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EAI_")}
    return subprocess.run(
        [sys.executable, "-c", "from eai.cli import main; main()", "alerts", *args,
         "-c", str(path)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip


def test_eai_alerts_unsilence_ends_it_with_the_os_user_in_the_audit(site: Site) -> None:
    made = _alerts_cli(site.path, "silence", "*", "--for", "1h", "--reason", "travaux")
    assert made.returncode == 0, made.stderr
    (silence,) = list_silences(site.store.engine)
    ended = _alerts_cli(site.path, "unsilence", str(silence.id))
    assert ended.returncode == 0, ended.stderr
    assert f"silence {silence.id} ended" in ended.stdout
    assert not list_silences(site.store.engine)
    again = _alerts_cli(site.path, "unsilence", str(silence.id))
    assert again.returncode != 0 and "already over" in again.stderr
    unknown = _alerts_cli(site.path, "unsilence", "999")
    assert unknown.returncode != 0 and "no silence 999" in unknown.stderr
    (rec,) = [r for r in list_audit(site.store.engine) if r.entry.action == "unsilence"]
    assert rec.actor.kind == "os-user" and rec.actor.name == getpass.getuser()
    assert rec.entry.target == "* *" and "travaux" in rec.entry.detail
