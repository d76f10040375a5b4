"""``eai audit verify`` finds a record deleted, edited or reordered in the journal;
``eai audit export --format fhir`` gives a valid FHIR R4 Bundle and is itself audited."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import text

from eai import audit
from eai.store import Store
from tests._journal_db import engine_journal_url, journal_db

pytestmark = pytest.mark.integration

EAI = [sys.executable, "-c", "from eai.cli import main; main()"]
ME = pwd.getpwuid(os.getuid()).pw_name
KEY = "42" * 32


def _eai(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EAI_")}
    env["EAI_KEY"] = KEY
    return subprocess.run(
        [*EAI, *args, "-c", str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=path.parent,
        timeout=60,
        check=False,
    )


def _trail(tmp_path: Path) -> Path:
    """A routes.yaml (engine section only) whose journal holds five audit records."""
    data = tmp_path / "var"
    path = tmp_path / "routes.yaml"
    path.write_text(f"engine:\n  data_dir: {data}\n  node_id: eai-test-1\n")
    store = Store(engine_journal_url(path), data, KEY)
    try:
        audit.record(store, audit.os_user(), "pause", target="destination dcc")
        audit.record(store, audit.account("alice", "192.0.2.7"), "login")
        audit.record(store, audit.account("mallory", "192.0.2.9"), "login-failed", outcome="denied")
        audit.record(store, audit.os_user(), "resume", target="destination dcc")
        audit.record(
            store,
            audit.caller_actor(ME, os.getuid(), 4242),
            "read-raw",
            target="message 9",
            patient=store.cipher.hash_id("IPP-000009"),
        )
    finally:
        store.engine.dispose()
    return path


def _sql(path: Path, *statements: str) -> None:
    with journal_db(path) as conn:
        for statement in statements:
            conn.execute(text(statement))


def _swap(path: Path) -> None:
    """Records 2 and 3 change places (each keeps its own content, MAC and all)."""
    _sql(
        path,
        "UPDATE audit_log SET seq = -2 WHERE seq = 2",
        "UPDATE audit_log SET seq = 2 WHERE seq = 3",
        "UPDATE audit_log SET seq = 3 WHERE seq = -2",
    )


TAMPERING: dict[str, tuple[Callable[[Path], None], int, str]] = {
    "deleted": (
        lambda p: _sql(p, "DELETE FROM audit_log WHERE seq = 3"),
        4,
        "record 3 is missing (deleted)",
    ),
    "edited": (
        lambda p: _sql(p, "UPDATE audit_log SET outcome = 'success' WHERE seq = 3"),
        3,
        "record 3 does not match its MAC",
    ),
    "reordered": (_swap, 2, "record 2 does not match its MAC"),
    "last deleted": (
        lambda p: _sql(p, "DELETE FROM audit_log WHERE seq = 5"),
        5,
        "the last records were deleted",
    ),
}


def test_an_intact_chain_verifies(tmp_path: Path) -> None:
    path = _trail(tmp_path)
    res = _eai(path, "audit", "verify")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok: 5 record(s) chained (records 1 to 5)"


@pytest.mark.parametrize("how", sorted(TAMPERING))
def test_tampering_is_found(tmp_path: Path, how: str) -> None:
    path = _trail(tmp_path)
    tamper, seq, problem = TAMPERING[how]
    tamper(path)
    res = _eai(path, "audit", "verify")
    assert res.returncode == 1, res.stdout + res.stderr
    first_line = res.stderr.splitlines()[0]
    assert first_line.startswith(f"broken at record {seq}: "), res.stderr
    assert problem in first_line
    intact = {"deleted": 2, "edited": 2, "reordered": 1, "last deleted": 4}[how]
    assert res.stderr.splitlines()[1].strip() == f"records 1 to {intact} are intact"
    as_json = json.loads(_eai(path, "audit", "verify", "--json").stdout)
    assert as_json["ok"] is False and as_json["broken_seq"] == seq


def test_list_filters(tmp_path: Path) -> None:
    path = _trail(tmp_path)
    res = _eai(path, "audit", "list", "--actor", "alice", "--json")
    assert res.returncode == 0, res.stderr
    [row] = json.loads(res.stdout)
    assert row["action"] == "login" and row["actor"]["peer"] == "192.0.2.7"
    text = _eai(path, "audit", "list", "--since", "1h").stdout
    assert text.splitlines()[0].split()[:3] == ["SEQ", "AT", "(UTC)"]
    assert len(text.splitlines()) == 6
    assert "login-failed" in text and "denied" in text
    assert _eai(path, "audit", "list", "--since", "2999-01-01").stderr.strip() == "no audit record"


def test_fhir_export_is_a_valid_r4_bundle_and_is_audited(tmp_path: Path) -> None:
    path = _trail(tmp_path)
    res = _eai(path, "audit", "export", "--format", "fhir")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    bundle = Bundle.model_validate(data)
    assert bundle.type == "collection"
    events = [e.resource for e in bundle.entry or []]
    assert all(isinstance(e, AuditEvent) for e in events)
    assert len(events) == 6  # the five records and the export itself
    read = events[4]
    assert read.type.code == "rest" and read.subtype[0].code == "read" and read.action == "R"
    assert read.meta.profile == [
        "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientRead"
    ]
    [patient] = [e for e in read.entity if e.role.code == "1"]
    assert patient.type.code == "1" and patient.what.identifier.value != "IPP-000009"
    assert read.agent[0].requestor is True and read.agent[0].who.identifier.value == ME
    failed = events[2]
    assert failed.outcome == "4" and failed.type.code == "110114"
    assert failed.agent[0].network.address == "192.0.2.9"
    export = events[5]
    assert export.type.code == "110106" and export.agent[0].who.identifier.value == ME
    assert "IPP-000009" not in res.stdout
    assert events[0].source.site == "eai-test-1"
    [listed] = json.loads(_eai(path, "audit", "list", "--json", "--limit", "1").stdout)
    assert listed["action"] == "export" and listed["actor"]["name"] == ME
    assert _eai(path, "audit", "verify").returncode == 0
