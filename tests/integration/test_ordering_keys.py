"""Order per ordering key, not behind a global watermark (on SQLite and PostgreSQL).

A message still ``received`` (its pipeline node died holding it, say) holds back the
later deliveries of its own ordering key (the establishment's facility and patient id,
read at ingest: ``eai.order_key``) and nothing else; a message whose key is unknown
holds back everybody, and waits for everybody, as all did behind the former watermark.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Connection, insert, inspect, select, text

from eai.messages import JournalEntry
from eai.store import (
    ClaimedDelivery,
    MessagePlan,
    PlannedDelivery,
    Store,
    apply_plans,
    claim_deliveries,
    claim_messages,
)
from eai.store._claims import _CLAIMABLE_DELIVERIES
from eai.store.schema import messages
from tests._database import database_url
from tests._journal_db import journal_db

pytestmark = pytest.mark.integration

LEASE = 60.0
DEAD = "dead-node/1/0123456789ab"
"""A pipeline node that leased messages, then died (its lease runs for a minute)."""


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _hl7(n: int, ipp: str | None, facility: str = "CHU-X") -> bytes:
    """An A08 of patient ``ipp`` (PID-3: the INS first, then the IPP); None: no PID."""
    msh = f"MSH|^~\\&|GAM|{facility}|DPI|CHU-X|20240306||ADT^A08^ADT_A01|C{n}|P|2.5\r"
    if ipp is None:
        return msh.encode()
    ins = "279035121518989^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.10&ISO^INS"
    return f"{msh}PID|1||{ins}~{ipp}^^^{facility}&000897406&N^PI||PAT^UN^^^^^L\r".encode()


@pytest.fixture
def store(journal_url: str, tmp_path: Path) -> Iterator[Store]:
    s = Store(journal_url, tmp_path / "data", None)
    s.start()
    try:
        yield s
    finally:
        s.close()


def _ingest(store: Store, payloads: Sequence[bytes], first: int = 0) -> list[int]:
    async def go() -> list[int]:
        ids = []
        for n, payload in enumerate(payloads, first):  # one by one: ids in this order
            entry = JournalEntry(
                listener="in",
                payload=payload,
                received_at=datetime.now(UTC),
                dedup_key=f"in|GAM|CHU-X|C{n}",
                control_id=f"C{n}",
                message_type="ADT^A08",
            )
            ids.append((await store.ingest(entry)).message_id)
        return ids

    return asyncio.run(go())


def _process(store: Store, owner: str, ids: Sequence[int], patient: str | None = None) -> None:
    """``owner`` leases the ``received`` messages ``ids`` and plans one delivery to dcc for
    each (its patient_key: ``patient``, or the message's own id)."""
    claimed = store.writer.run_sync(lambda c: claim_messages(c, owner, _now(), LEASE, 1000))
    assert {m.id for m in claimed} >= set(ids)
    plans = [
        MessagePlan(
            mid,
            "processed",
            routes=("r",),
            deliveries=(PlannedDelivery("dcc", "r"),),
            patient_key=patient or f"p{mid}",
            control_id=f"M{mid}",
        )
        for mid in ids
    ]
    store.writer.run_sync(lambda c: apply_plans(c, plans, _now()))


def _lease_to_dead_node(store: Store, ids: Sequence[int]) -> None:
    """The dead node leased the oldest ``received`` messages, ``ids`` (and no others)."""

    def lease(c: Connection) -> list[int]:
        return [m.id for m in claim_messages(c, DEAD, _now(), LEASE, len(ids))]

    assert store.writer.run_sync(lease) == list(ids)


def _claim(store: Store, owner: str = "n1") -> list[ClaimedDelivery]:
    return store.writer.run_sync(lambda c: claim_deliveries(c, "dcc", owner, _now(), LEASE, 200))


def _keys(store: Store) -> list[str | None]:
    with store.engine.connect() as c:
        return list(c.execute(select(messages.c.order_key).order_by(messages.c.id)).scalars())


def test_the_key_is_journaled_at_ingest(store: Store) -> None:
    _ingest(store, [_hl7(1, "IPP-A"), _hl7(2, "IPP-A"), _hl7(3, "IPP-B"), _hl7(4, None)])
    a1, a2, b, none = _keys(store)
    assert a1 == a2 == store.cipher.hash_id("CHU-X\x1fIPP-A")  # keyed: no id in clear
    assert b not in (a1, "", None)
    assert none == ""


def test_a_dead_nodes_message_does_not_hold_back_another_patient(store: Store) -> None:
    a1, b2 = _ingest(store, [_hl7(1, "IPP-A"), _hl7(2, "IPP-B")])
    _lease_to_dead_node(store, [a1])
    _process(store, "live", [b2])
    assert [r.message_id for r in _claim(store)] == [b2]  # at once, A's lease running


def test_it_holds_back_the_later_messages_of_its_key(store: Store) -> None:
    a1, b2, a3, a4 = _ingest(
        store, [_hl7(1, "IPP-A"), _hl7(2, "IPP-B"), _hl7(3, "IPP-A"), _hl7(4, "IPP-A", "CHU-Y")]
    )
    _lease_to_dead_node(store, [a1])
    # a3: same facility and IPP, waits; a4: the same IPP from another facility, does not
    _process(store, "live", [b2, a3, a4])
    assert [r.message_id for r in _claim(store)] == [b2, a4]
    # the dead node's leases are released: the pipeline processes a1, then all goes in order
    _process_after_release(store, a1)
    rows = _claim(store, "n2")
    assert [r.message_id for r in rows] == [a1, a3]


def _process_after_release(store: Store, mid: int) -> None:
    def release(c: Connection) -> None:
        c.execute(
            messages.update().where(messages.c.id == mid).values(lease_owner=None, lease_until=None)
        )

    store.writer.run_sync(release)
    _process(store, "live", [mid])


def test_an_unknown_key_holds_back_everybody(store: Store) -> None:
    x1, a2, b3 = _ingest(store, [_hl7(1, None), _hl7(2, "IPP-A"), _hl7(3, "IPP-B")])
    _lease_to_dead_node(store, [x1])
    _process(store, "live", [a2, b3])
    assert _claim(store) == []
    _process_after_release(store, x1)
    assert [r.message_id for r in _claim(store)] == [x1, a2, b3]


def test_a_message_of_unknown_key_waits_for_every_earlier_one(store: Store) -> None:
    a1, x2, b3 = _ingest(store, [_hl7(1, "IPP-A"), _hl7(2, None), _hl7(3, "IPP-B")])
    _lease_to_dead_node(store, [a1])
    _process(store, "live", [x2, b3])
    # x2 could be A's (its key is unknown): it waits for a1; b3 does not (a1 is not B's)
    assert [r.message_id for r in _claim(store)] == [b3]
    _process_after_release(store, a1)
    assert [r.message_id for r in _claim(store, "n2")] == [a1, x2]  # b3: n1's lease


def test_a_waiting_delivery_blocks_its_patient_across_keys(store: Store) -> None:
    # the pipeline keys one patient by its regional identity: known at two facilities
    a1, a2, a3 = _ingest(store, [_hl7(1, "IPP-A"), _hl7(2, "IPP-A"), _hl7(3, "IPP-A9", "CHU-Y")])
    _lease_to_dead_node(store, [a1])
    _process(store, "live", [a2, a3], patient="regional-1")
    # a2 waits for a1 (same key); a3 (another key) would not, but it is the same patient's
    # later delivery: it does not overtake a2
    assert _claim(store) == []
    _process_after_release(store, a1)
    assert [r.message_id for r in _claim(store)] == [a1, a2, a3]


def test_a_journal_older_than_the_key_gets_it(tmp_path: Path) -> None:
    db = database_url(tmp_path / "eai.db")
    store = Store(db, tmp_path / "data")
    store.start()
    store.close()
    with journal_db(db) as conn:  # as an older version left it
        conn.execute(text("DROP INDEX ix_messages_received_key"))
        conn.execute(text("ALTER TABLE messages DROP COLUMN order_key"))
        conn.execute(
            text(
                "INSERT INTO messages (listener, received_at, content_type, status, peer,"
                " control_id, message_type, sending_application, sending_facility, size,"
                " payload, ack, reject_reason, routes) VALUES ('in', :at, 'hl7v2',"
                " 'received', '', 'C0', 'ADT^A08', 'GAM', 'CHU-X', 0, :p, :e, '', '')"
            ),
            {"at": _now(), "p": b"sealed elsewhere", "e": b""},
        )
    store = Store(db, tmp_path / "data")
    store.start()
    try:
        with store.engine.connect() as c:
            found = inspect(c)
            assert "order_key" in {col["name"] for col in found.get_columns("messages")}
            assert "ix_messages_received_key" in {i["name"] for i in found.get_indexes("messages")}
        (old,) = _ids(store)
        assert _keys(store) == [None]
        _lease_to_dead_node(store, [old])
        (b1,) = _ingest(store, [_hl7(1, "IPP-B")])
        _process(store, "live", [b1])
        assert _claim(store) == []  # a message journaled before the keys: a barrier
    finally:
        store.close()


def _ids(store: Store) -> list[int]:
    with store.engine.connect() as c:
        return list(c.execute(select(messages.c.id).order_by(messages.c.id)).scalars())


def test_the_claim_seeks_received_messages_never_scans_them(store: Store) -> None:
    """However many messages are ``received`` (20,000 in a burst), a delivery row costs
    index seeks, never a scan of ``messages``.

    Checked on the plan, not on a timing: SQLite's EXPLAIN QUERY PLAN, and PostgreSQL's
    EXPLAIN with sequential scans discouraged (on a few rows its planner rightly prefers
    them)."""
    stmt = _CLAIMABLE_DELIVERIES.params(b_destination="dcc", b_limit=200)
    with store.engine.connect() as c:
        sql = str(stmt.compile(dialect=c.dialect, compile_kwargs={"literal_binds": True}))
        if c.dialect.name == "sqlite":
            plan = [r[3] for r in c.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
            reads = [p for p in plan if " earlier " in p or " messages " in p]
            assert len(reads) == 5, plan  # the message by its id, four look-ups
            assert all(p.startswith("SEARCH ") for p in reads), plan
            by_key = "ix_messages_received_key (status=? AND order_key=? AND id<?)"
            assert any(by_key in p for p in reads), plan
        else:
            _burst(c)
            c.exec_driver_sql("SET LOCAL enable_seqscan = off")
            plan = [r[0] for r in c.exec_driver_sql(f"EXPLAIN {sql}")]
            assert not [p for p in plan if "Seq Scan on messages" in p], plan
            by_key = [p for p in plan if "ix_messages_received_key" in p]
            assert len(by_key) == 3, plan  # the keyless look-ups and the key's, per row


def _burst(c: Connection) -> None:
    """3,000 messages of 500 patients, 9 in 10 ``received``, the statistics analysed: what
    PostgreSQL's planner needs to plan as it does for a burst (on an empty journal it
    picks any index: all cost the same)."""
    at = _now()
    c.execute(
        insert(messages),
        [
            {
                "listener": "in",
                "received_at": at,
                "content_type": "hl7v2",
                "status": "processed" if n % 10 == 0 else "received",
                "size": 0,
                "payload": b"",
                "order_key": f"k{n % 500}",
            }
            for n in range(3000)
        ],
    )
    c.exec_driver_sql("ANALYZE messages")
