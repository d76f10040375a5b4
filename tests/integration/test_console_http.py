"""The web console over real HTTP: accounts, roles, CSRF, lock-out, no patient data for a
viewer, and the actions' audit records naming the account.

The engine runs in a thread with ``console.bind`` on a free port; messages arrive over
MLLP (the national PAM FR fixture with a patient name of ours).
"""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from hl7.client import MLLPClient

from eai.console import PAGES, hash_password
from eai.store import Store, add_account, list_audit
from standins.mllp import MllpPeer
from tests._pki import make_pki
from tests.engine_harness import EngineThread, adt, write_routes

pytestmark = pytest.mark.integration

SECRET_NAME = "CONSOLENOM"
PATIENT = "4455667"
PASSWORDS = {"vera": "viewer-pass-123", "otto": "operator-pass-123", "ada": "admin-pass-1234"}
ROLES = {"vera": "viewer", "otto": "operator", "ada": "admin"}
CONSOLE = "console:\n  bind: 127.0.0.1:0\n  lock_after: 3\n"


def _message(control_id: str) -> bytes:
    segs = adt(control_id, PATIENT).decode().split("\r")
    for i, seg in enumerate(segs):
        if seg.startswith("PID"):
            f = seg.split("|")
            f[5] = f"{SECRET_NAME}^JEANNE"
            segs[i] = "|".join(f)
    return "\r".join(segs).encode()


@dataclass
class Console:
    base: str
    path: Path
    eng: EngineThread
    sink: MllpPeer

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, follow_redirects=False, timeout=20)

    def store(self) -> Store:
        """The engine's own store: a second SQLite connection opened in this process would
        drop the engine's POSIX locks on the file when its open() probe closes."""
        store = self.eng.engine.store
        assert store is not None
        return store


def _users(path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EAI_")}
    return subprocess.run(
        [sys.executable, "-c", "from eai.cli import main; main()", "users", *args, "-c", str(path)],
        input=stdin, capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip


def _users_add(path: Path, name: str, role: str, password: str) -> subprocess.CompletedProcess[str]:
    return _users(path, "add", name, "--role", role, stdin=password + "\n")


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    with MllpPeer() as sink:
        path = write_routes(tmp_path, sink.port, extra=CONSOLE)
        with EngineThread(path) as eng:
            assert eng.engine.console is not None
            c = Console(f"http://127.0.0.1:{eng.engine.console.port}", path, eng, sink)
            res = _users_add(path, "ada", "admin", PASSWORDS["ada"])
            assert res.returncode == 0, res.stderr
            for name in ("vera", "otto"):
                add_account(c.store().engine, name, ROLES[name], hash_password(PASSWORDS[name]))
            yield c


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html
    return m.group(1)


def login(c: httpx.Client, name: str, password: str | None = None) -> httpx.Response:
    form = c.get("/login")
    assert form.status_code == 200
    return c.post(
        "/login",
        data={"user": name, "password": password or PASSWORDS[name], "csrf": _csrf(form.text)},
    )


def _send(c: Console, *control_ids: str) -> None:
    with MLLPClient("127.0.0.1", c.eng.port("chu-x-adt")) as m:
        for cid in control_ids:
            assert b"MSA|AA" in m.send_message(_message(cid))


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path).replace("{name}", "dcc")


def test_anonymous_is_sent_to_the_login_page_and_roles_are_enforced(console: Console) -> None:
    _send(console, "HTTP-1")
    with console.client() as anon:
        for spec in PAGES:
            for method in spec.methods:
                r = anon.request(method, _concrete(spec.path).replace("/1/", "/1/"))
                if method == "GET":
                    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
                else:
                    assert r.status_code == 401, spec.path
    order = ["viewer", "operator", "admin"]
    for name in ("vera", "otto"):
        with console.client() as c:
            assert login(c, name).status_code == 303
            csrf = _csrf(c.get("/").text)
            for spec in PAGES:
                if order.index(spec.role) <= order.index(ROLES[name]):
                    continue
                url = _concrete(spec.path).replace("/destinations/1/", "/destinations/dcc/")
                for method in spec.methods:
                    data = {"csrf": csrf, "confirm": "yes", "reason": "x"}
                    r = c.request(method, url, data=data if method == "POST" else None)
                    assert r.status_code == 403, (name, spec.path, r.status_code)
    store = console.store()
    assert not [r for r in list_audit(store.engine) if r.entry.action in ("pause", "read-raw")]


def test_state_changes_need_the_csrf_token(console: Console) -> None:
    with console.client() as c:
        form = c.get("/login")
        refused = c.post("/login", data={"user": "otto", "password": PASSWORDS["otto"]})
        assert refused.status_code == 403 and "eai_session" not in refused.cookies
        assert form.status_code == 200
        assert login(c, "otto").status_code == 303
        for data in ({"confirm": "yes"}, {"confirm": "yes", "csrf": "forged"}):
            r = c.post("/destinations/dcc/pause", data=data)
            assert r.status_code == 403 and "CSRF" in r.text
        overview = c.get("/")
        assert "paused" not in overview.text
        csrf = _csrf(overview.text)
        first = c.post("/destinations/dcc/pause", data={"csrf": csrf})
        assert first.status_code == 200 and 'id="confirm"' in first.text  # asks first
        assert "paused" not in c.get("/overview/rows").text
        done = c.post("/destinations/dcc/pause", data={"csrf": csrf, "confirm": "yes"})
        assert done.status_code == 200 and "dcc paused" in done.text
        assert "state-paused" in c.get("/overview/rows").text
    store = console.store()
    pause = [r for r in list_audit(store.engine) if r.entry.action == "pause"]
    assert len(pause) == 1
    assert pause[0].actor.name == "otto" and pause[0].actor.kind == "account"
    assert pause[0].actor.peer == "127.0.0.1" and pause[0].actor.via == "console"


def test_session_cookie_flags(console: Console) -> None:
    with console.client() as c:
        r = login(c, "vera")
        cookie = r.headers["set-cookie"]
        assert "eai_session=" in cookie and "HttpOnly" in cookie
        assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
        assert "Max-Age=28800" in cookie
        assert c.get("/").status_code == 200
        csrf = _csrf(c.get("/").text)
        assert c.post("/logout", data={"csrf": csrf}).status_code == 303
        assert c.get("/").status_code == 303  # the session is gone server-side


def test_viewer_pages_hold_no_patient_data(console: Console) -> None:
    _send(console, "PHI-1", "PHI-2")
    assert console.sink.wait_for(lambda s: len(s.received) == 2, 20)
    with console.client() as c:
        assert login(c, "vera").status_code == 303
        pages = [
            c.get("/"),
            c.get("/overview/rows"),
            c.get("/messages", params={"all": "1"}),
            c.get("/messages", params={"control_id": "PHI-1"}),
            c.get("/messages", params={"patient": PATIENT}),
            c.get("/messages/1"),
            c.get("/messages/2"),
        ]
        store = console.store()
        patient_hash = store.cipher.hash_id(PATIENT)
        pages.append(c.get("/messages", params={"patient_hash": patient_hash}))
        assert pages[-1].text.count('class="msg"') == 2 and 'id="by-patient"' in pages[-1].text
        for r in pages:
            assert r.status_code == 200, r.url
            assert SECRET_NAME not in r.text and "JEANNE" not in r.text, r.url
            assert PATIENT not in r.text, r.url
        assert "PHI-1" in pages[3].text and "PHI-2" not in pages[3].text
        assert 'href="/messages/1"' in pages[4].text and 'href="/messages/2"' in pages[4].text
        assert "Show the payload" not in pages[5].text
        assert c.post("/messages/1/raw", data={"csrf": _csrf(pages[5].text), "reason": "x"}
                      ).status_code == 403  # fmt: skip


def test_operator_reads_the_payload_with_a_reason_recorded_first(console: Console) -> None:
    _send(console, "RAW-1")
    with console.client() as c:
        assert login(c, "otto").status_code == 303
        page = c.get("/messages/1")
        csrf = _csrf(page.text)
        assert c.post("/messages/1/raw", data={"csrf": csrf, "reason": " "}).status_code == 400
        r = c.post("/messages/1/raw", data={"csrf": csrf, "reason": "ticket 42"})
        assert r.status_code == 200 and SECRET_NAME in r.text
        assert r.headers["cache-control"] == "no-store"
        preview = c.post("/messages/1/replay", data={"csrf": csrf})
        assert "would go to dcc" in preview.text
        done = c.post("/messages/1/replay", data={"csrf": csrf, "confirm": "yes"})
        assert "1 delivery(ies) queued" in done.text
        resent = c.post("/deliveries/1/resend?m=1", data={"csrf": csrf, "confirm": "yes"})
        assert resent.status_code == 200 and "delivery 1 queued again as delivery 3" in resent.text
        not_held = c.post("/deliveries/1/release?m=1", data={"csrf": csrf, "confirm": "yes"})
        assert not_held.status_code == 409 and "not held" in not_held.text
    store = console.store()
    rows = {r.entry.action: r for r in list_audit(store.engine)}
    assert rows["read-raw"].actor.name == "otto" and "ticket 42" in rows["read-raw"].entry.detail
    assert rows["replay"].actor.name == "otto" and rows["replay"].entry.message_id == 1
    assert rows["login"].actor.name == "otto"
    assert rows["resend"].actor.name == "otto" and rows["resend"].entry.target == "delivery 1"
    assert "identity-release" not in rows


def test_https_when_a_certificate_is_configured(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    tls = f"  tls: {{cert: {pki.server_cert}, key: {pki.server_key}}}\n"
    with MllpPeer() as sink:
        path = write_routes(tmp_path, sink.port, extra=CONSOLE + tls)
        with EngineThread(path) as eng:
            assert eng.engine.console is not None
            assert eng.engine.store is not None
            add_account(eng.engine.store.engine, "vera", "viewer", hash_password(PASSWORDS["vera"]))
            base = f"https://127.0.0.1:{eng.engine.console.port}"
            with httpx.Client(
                base_url=base, verify=ssl.create_default_context(cafile=str(pki.ca))
            ) as c:
                r = login(c, "vera")
                assert r.status_code == 303 and "Secure" in r.headers["set-cookie"]
            with pytest.raises(httpx.HTTPError):  # no plain HTTP on the console's port
                httpx.get(f"http://127.0.0.1:{eng.engine.console.port}/login", timeout=5)


def test_wrong_passwords_lock_the_account(console: Console) -> None:
    with console.client() as c:
        for _ in range(2):
            r = login(c, "vera", "not-the-password")
            assert r.status_code == 401 and "wrong user name or password" in r.text
        r = login(c, "vera", "not-the-password")
        assert r.status_code == 401 and "locked" in r.text
        r = login(c, "vera")  # the right password, but locked now
        assert r.status_code == 401 and "locked" in r.text
        assert login(c, "nobody-here", "whatever-pass").status_code == 401
    listed = subprocess.run(
        [sys.executable, "-c", "from eai.cli import main; main()", "users", "list", "--json",
         "-c", str(console.path)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    by_name = {a["name"]: a for a in json.loads(listed.stdout)}
    assert by_name["vera"]["locked"] is True and by_name["otto"]["locked"] is False
    assert "password" not in listed.stdout.replace("password_hash", "")
    store = console.store()
    failed = [r for r in list_audit(store.engine) if r.entry.action == "login-failed"]
    details = [r.entry.detail for r in reversed(failed)]
    assert details[2].startswith("wrong password; account locked")
    assert details[3] == "account locked" and failed[0].entry.detail == "unknown account"
    assert [r.entry.outcome for r in reversed(failed)][:4] == [
        "failure", "failure", "failure", "denied"
    ]  # fmt: skip


def test_passwd_unlocks_and_disable_ends_the_sessions(console: Console) -> None:
    short = _users(console.path, "passwd", "vera", stdin="short\n")
    assert short.returncode != 0 and "at least 12" in short.stderr
    again = _users_add(console.path, "vera", "viewer", "another-pass-123")
    assert again.returncode != 0 and "exists" in again.stderr
    with console.client() as c:
        for _ in range(3):
            login(c, "vera", "not-the-password")
        assert "locked" in login(c, "vera").text
    res = _users(console.path, "passwd", "vera", stdin="a-new-pass-1234\n")
    assert res.returncode == 0, res.stderr
    with console.client() as c:
        assert login(c, "vera", "a-new-pass-1234").status_code == 303
        assert c.get("/").status_code == 200
        res = _users(console.path, "disable", "vera")
        assert res.returncode == 0, res.stderr
        assert c.get("/").status_code == 303  # the open session ended
        refused = login(c, "vera", "a-new-pass-1234")
        assert refused.status_code == 401
    listed = _users(console.path, "list")
    assert re.search(r"^vera\s+viewer\s+disabled", listed.stdout, re.M), listed.stdout
    assert _users(console.path, "disable", "nobody").returncode == 3


def test_every_state_change_is_refused_without_the_csrf_token(console: Console) -> None:
    """Each POST page of the registry, by an admin (no role refusal first), without a
    token and with a forged one: 403 and nothing done."""
    _send(console, "CSRF-1")
    assert console.sink.wait_for(lambda s: len(s.received) == 1, 20)
    posts = [p for p in PAGES if "POST" in p.methods]
    assert {"/alerts/silences/{silence_id:int}/end", "/deliveries/{delivery_id:int}/output"} <= {
        p.path for p in posts
    }
    store = console.store()
    before = len(list_audit(store.engine))
    with console.client() as c:
        assert login(c, "ada").status_code == 303
        for spec in posts:
            url = _concrete(spec.path).replace("/destinations/1/", "/destinations/dcc/")
            for token in ({}, {"csrf": "forged"}):
                form = {"confirm": "yes", "reason": "x", "rule": "*", "for": "1h", **token}
                r = c.post(url, data=form)
                assert r.status_code == 403 and "CSRF" in r.text, (spec.path, r.status_code)
                assert SECRET_NAME not in r.text
    after = list_audit(store.engine)  # newest first
    done = [r.entry.action for r in after[: len(after) - before]]
    assert done == ["login"]  # the admin's login only: no action, no read


def test_viewer_pages_of_alerts_identity_and_the_overview_hold_no_patient_data(
    console: Console,
) -> None:
    _send(console, "PHI-3")
    assert console.sink.wait_for(lambda s: len(s.received) == 1, 20)
    with console.client() as c:
        assert login(c, "vera").status_code == 303
        for path in ("/", "/overview/rows", "/alerts", "/identity", "/messages/1"):
            r = c.get(path)
            assert r.status_code == 200, path
            assert SECRET_NAME not in r.text and "JEANNE" not in r.text, path
            assert PATIENT not in r.text, path
        rows = c.get("/overview/rows").text
    assert re.search(
        r'<tr data-name="chu-x-adt">.*?<svg class="spark"[^>]*data-total="1"', rows, re.S
    )
    assert re.search(r'<tr data-name="adt-to-dcc">.*?<svg class="spark"', rows, re.S)
