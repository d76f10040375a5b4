"""The audit trail's chain on both backends: append, list, verify, purge with an anchor.

Tampering by editing the SQLite file directly is in ``test_audit_cli.py``; appends
from two processes on PostgreSQL in ``test_audit_postgres.py``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, update

from eai import audit
from eai.store import (
    AuditEntry,
    Store,
    append_audit,
    hold_audit_lease,
    list_audit,
    purge_audit,
    utcnow,
    verify_chain,
)
from eai.store.schema import meta

pytestmark = pytest.mark.integration


@pytest.fixture
def store(journal_url: str, tmp_path: Path) -> Store:
    s = Store(journal_url, tmp_path / "data", "11" * 32)
    yield s  # type: ignore[misc]
    s.engine.dispose()


def _table(name: str):  # the audit tables are declared with the journal's metadata
    return meta.metadata.tables[name]


def test_records_chain_and_verify(store: Store) -> None:
    first = audit.record(store, audit.os_user(), "pause", target="destination dcc")
    second = audit.record(store, "alice", "login", detail="from  the\nconsole")
    assert (first.seq, second.seq) == (1, 2)
    assert second.prev_mac == first.mac
    assert second.actor == audit.AuditActor("alice", "account", "", "console")
    assert second.entry.detail == "from the console"  # one line
    check = verify_chain(store.engine, store.cipher)
    assert check.ok and check.checked == 2
    listed = list_audit(store.engine, actor="alice")
    assert [r.seq for r in listed] == [2]
    with pytest.raises(ValueError, match="unknown audit action"):
        audit.record(store, "alice", "dance")
    with pytest.raises(ValueError, match="outcome"):
        audit.record(store, "alice", "login", outcome="maybe")


def test_edit_and_tail_deletion_are_found(store: Store) -> None:
    for i in range(4):
        audit.record(store, "bob", "login", detail=f"n{i}")
    log = _table("audit_log")
    with store.engine.begin() as conn:
        conn.execute(update(log).where(log.c.seq == 3).values(actor="mallory"))
    check = verify_chain(store.engine, store.cipher)
    assert not check.ok and check.broken_seq == 3 and "MAC" in check.problem
    with store.engine.begin() as conn:
        conn.execute(update(log).where(log.c.seq == 3).values(actor="bob"))
        conn.execute(delete(log).where(log.c.seq == 4))
    check = verify_chain(store.engine, store.cipher)
    assert not check.ok and check.broken_seq == 4 and "last records were deleted" in check.problem


def test_purge_keeps_the_chain_verifiable(store: Store) -> None:
    old = utcnow() - timedelta(days=2000)
    for i in range(5):  # three written years ago, two now
        with store.engine.begin() as conn:
            entry = AuditEntry("login", detail=f"n{i}")
            append_audit(
                conn, store.cipher, audit.account("carol"), entry, old if i < 3 else utcnow()
            )
    cutoff = utcnow() - timedelta(days=1095)
    assert purge_audit(store.engine, store.cipher, cutoff, audit.engine_actor("n1"), utcnow()) == 3
    check = verify_chain(store.engine, store.cipher)
    assert check.ok, check.problem
    assert (check.first_seq, check.last_seq) == (4, 6)
    [purge] = list_audit(store.engine, action="purge")
    assert purge.seq == 6 and "3 record(s)" in purge.entry.detail
    assert purge.actor.kind == "engine"
    assert purge_audit(store.engine, store.cipher, cutoff, audit.engine_actor("n1"), utcnow()) == 0
    log = _table("audit_log")
    with store.engine.begin() as conn:  # deleting the next record by hand is still found
        conn.execute(delete(log).where(log.c.seq == 4))
    check = verify_chain(store.engine, store.cipher)
    assert not check.ok and check.broken_seq == 5 and "record 4 is missing" in check.problem


def test_anchor_moved_by_hand_is_found(store: Store) -> None:
    for i in range(3):
        audit.record(store, "dave", "login", detail=f"n{i}")
    log, state = _table("audit_log"), _table("audit_state")
    with store.engine.begin() as conn:  # delete record 1 and forge an anchor for it
        mac = conn.execute(log.select().where(log.c.seq == 1)).one().mac
        conn.execute(delete(log).where(log.c.seq == 1))
        conn.execute(state.insert().values(name="anchor", seq=1, mac=mac))
    check = verify_chain(store.engine, store.cipher)
    assert not check.ok and "named by no purge record" in check.problem


def test_one_forwarder_holds_the_lease(store: Store) -> None:
    assert hold_audit_lease(store.engine, "syslog", "node-a", 30)
    assert not hold_audit_lease(store.engine, "syslog", "node-b", 30)
    assert hold_audit_lease(store.engine, "syslog", "node-a", -5)  # renewed, but lapsed
    assert hold_audit_lease(store.engine, "syslog", "node-b", 30)  # taken over
    assert not hold_audit_lease(store.engine, "syslog", "node-a", 30)
