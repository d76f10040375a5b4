"""The journal behaves the same on SQLite and PostgreSQL (``journal_url`` runs each test twice).

Covers the writer thread (group commit, retransmissions, encryption at rest, failing
writes, wrong key), the claim logic the pipeline and delivery workers rely on
(``eai.store``'s claims and plans, driven directly with synthetic plans), the CLI queries
(``eai.store``'s support queries) and, last, a whole engine run on each backend.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hl7.client import MLLPClient
from sqlalchemy import Connection, func, select

from eai import store as read
from eai.errors import NotFound, StoreError
from eai.messages import IngestResult, JournalEntry
from eai.store import (
    ClaimedDelivery,
    DeliveryOutcome,
    IdentityOp,
    MessagePlan,
    PlannedDelivery,
    Store,
    XrefRecord,
    XrefRedirect,
    apply_plans,
    claim_deliveries,
    claim_messages,
    local_ordering_key,
    record_outcomes,
    xref_lookup,
)
from eai.store.schema import deliveries, events, messages
from standins.mllp import MllpPeer
from tests._mllp import msa
from tests.engine_harness import EngineThread, adt, write_routes

pytestmark = pytest.mark.integration

T = TypeVar("T")
LEASE = 30.0


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _entry(
    i: int,
    *,
    listener: str = "l1",
    message_type: str = "ADT^A01",
    status: str = "received",
    received_at: datetime | None = None,
    body: str = "",
) -> JournalEntry:
    cid = f"C{i}"
    return JournalEntry(
        listener=listener,
        payload=f"MSH|^~\\&|APP|FAC|||||{message_type}|{cid}|P|2.5\rPID|||{body}".encode(),
        received_at=received_at or datetime.now(UTC),
        status=status,  # type: ignore[arg-type]
        dedup_key=f"{listener}|APP|FAC|{cid}",
        control_id=cid,
        message_type=message_type,
        sending_application="APP",
        sending_facility="FAC",
        ack=f"MSH|^~\\&|\rMSA|AA|{cid}".encode(),
    )


@pytest.fixture
def store(journal_url: str, tmp_path: Path) -> Iterator[Store]:
    s = Store(journal_url, tmp_path / "data", None)
    s.start()
    try:
        yield s
    finally:
        s.close()


def _ingest(store: Store, entries: Sequence[JournalEntry]) -> list[IngestResult]:
    async def go() -> list[IngestResult]:
        return list(await asyncio.gather(*(store.ingest(e) for e in entries)))

    return asyncio.run(go())


def _tx(store: Store, op: Callable[[Connection], T]) -> T:
    """Runs ``op`` on the writer thread, in its transaction, as the engine does."""
    return store.writer.run_sync(op)


def _plan(store: Store, mid: int, patient: str, dest: str = "dcc") -> MessagePlan:
    return MessagePlan(
        mid,
        "processed",
        routes=("r1",),
        deliveries=(PlannedDelivery(dest, "r1"),),
        patient_key=store.cipher.hash_id(f"{patient}^^^FAC"),
        patient_id_hashes=(store.cipher.hash_id(patient),),
        control_id=f"M{mid}",
    )


def _journal_and_route(
    store: Store, patients: Sequence[str | None], start: int = 0
) -> tuple[list[int], list[MessagePlan]]:
    """Journals one message per entry of ``patients`` and leases them all to the
    pipeline; applies the plan of those whose patient is not None (the others stay
    ``received``). Returns the message ids and the plans applied."""
    ids = [r.message_id for r in _ingest(store, [_entry(start + i) for i in range(len(patients))])]
    claimed = _tx(store, lambda c: claim_messages(c, "pipe", _now(), LEASE, 1000))
    assert {m.id for m in claimed} >= set(ids)
    plans = [_plan(store, mid, p) for mid, p in zip(ids, patients, strict=True) if p is not None]
    _tx(store, lambda c: apply_plans(c, plans, _now()))
    return ids, plans


def _claim(
    store: Store, owner: str = "n1", now: datetime | None = None, window: int = 200
) -> list[ClaimedDelivery]:
    at = now or _now()
    return _tx(store, lambda c: claim_deliveries(c, "dcc", owner, at, LEASE, window))


def _record(store: Store, outcomes: Sequence[DeliveryOutcome]) -> None:
    _tx(store, lambda c: record_outcomes(c, outcomes, _now()))


def _delivered(rows: Sequence[ClaimedDelivery]) -> list[DeliveryOutcome]:
    return [DeliveryOutcome(r.id, r.message_id, "delivered", 1, _now(), "AA") for r in rows]


def _chains(rows: Sequence[ClaimedDelivery]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for r in rows:
        out.setdefault(r.patient_key, []).append(r.message_id)
    return out


# -- the writer thread --------------------------------------------------------------


def test_group_commit_of_200_concurrent_ingests(store: Store) -> None:
    before = store.writer.commits
    results = _ingest(store, [_entry(i) for i in range(200)])
    commits = store.writer.commits - before
    assert len({r.message_id for r in results}) == 200
    assert not any(r.duplicate for r in results)
    assert 1 <= commits < 50, f"{commits} commits for 200 ingests: not grouped"
    with store.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(messages)).scalar_one() == 200
        kinds = {
            k: n for k, n in c.execute(select(events.c.kind, func.count()).group_by(events.c.kind))
        }
    assert kinds == {"received": 200, "acknowledged": 200}


def test_retransmission_returns_the_stored_ack(store: Store) -> None:
    [first] = _ingest(store, [_entry(7)])
    [again] = _ingest(store, [_entry(7)])
    assert again.duplicate and again.message_id == first.message_id
    assert again.stored_ack.endswith(b"MSA|AA|C7")
    # two copies of one message inside one group commit
    a, b = _ingest(store, [_entry(8), _entry(8)])
    assert {a.duplicate, b.duplicate} == {False, True}
    assert a.message_id == b.message_id
    dup = a if a.duplicate else b
    assert dup.stored_ack.endswith(b"MSA|AA|C8")
    with store.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(messages)).scalar_one() == 2


def test_payload_is_encrypted_in_the_database(store: Store) -> None:
    entry = _entry(1, body="PAT-SECRET^JEAN")
    [res] = _ingest(store, [entry])
    with store.engine.connect() as c:
        raw, size = c.execute(
            select(messages.c.payload, messages.c.size).where(messages.c.id == res.message_id)
        ).one()
    raw = bytes(raw)
    assert b"PAT-SECRET" not in raw and b"ADT^A01" not in raw
    assert size == len(entry.payload)
    assert store.cipher.open(raw) == entry.payload


def _install_failing_trigger(store: Store) -> None:
    with store.engine.begin() as c:
        if store.is_sqlite:
            c.exec_driver_sql(
                "CREATE TRIGGER no_insert BEFORE INSERT ON messages "
                "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
        else:
            c.exec_driver_sql(
                "CREATE FUNCTION eai_no_insert() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'disk full'; END $$"
            )
            c.exec_driver_sql(
                "CREATE TRIGGER no_insert BEFORE INSERT ON messages "
                "FOR EACH ROW EXECUTE FUNCTION eai_no_insert()"
            )


def test_failing_write_raises_store_error_and_writer_recovers(store: Store) -> None:
    def boom(conn: Connection) -> None:
        raise RuntimeError("bad op")

    async def isolated() -> list[Any]:
        return list(
            await asyncio.gather(
                store.ingest(_entry(1)),
                store.writer.run(boom),
                store.ingest(_entry(2)),
                return_exceptions=True,
            )
        )

    a, b, c = asyncio.run(isolated())
    assert isinstance(b, StoreError)
    assert isinstance(a, IngestResult) and isinstance(c, IngestResult)

    _install_failing_trigger(store)
    with pytest.raises(StoreError, match="journal write failed.*disk full"):
        _ingest(store, [_entry(3)])
    # a grouped batch fails as a whole, then every write fails alone: nothing half-written
    results = asyncio.run(_gather_errors(store, [_entry(4), _entry(5)]))
    assert all(isinstance(r, StoreError) for r in results)

    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER no_insert" + ("" if store.is_sqlite else " ON messages"))
    [ok] = _ingest(store, [_entry(6)])  # the writer's connection is usable again
    with store.engine.connect() as conn:
        ids = set(conn.execute(select(messages.c.control_id)).scalars())
    assert ids == {"C1", "C2", "C6"}
    assert ok.message_id > 0


async def _gather_errors(store: Store, entries: Sequence[JournalEntry]) -> list[Any]:
    return list(await asyncio.gather(*(store.ingest(e) for e in entries), return_exceptions=True))


def test_wrong_key_is_refused_at_open(journal_url: str, tmp_path: Path) -> None:
    key = os.urandom(32).hex()
    Store(journal_url, tmp_path / "a", key).close()
    # the same key from another data_dir (another node) opens it
    Store(journal_url, tmp_path / "b", key).close()
    with pytest.raises(StoreError, match="another key"):
        Store(journal_url, tmp_path / "c", os.urandom(32).hex())


# -- the pipeline's claims ----------------------------------------------------------


def test_claim_messages_oldest_first_leased_and_applied_once(store: Store) -> None:
    ids = [r.message_id for r in _ingest(store, [_entry(i) for i in range(5)])]
    _ingest(store, [_entry(99, status="rejected")])  # never offered to the pipeline
    now = _now()
    first = _tx(store, lambda c: claim_messages(c, "a", now, LEASE, 2))
    assert [m.id for m in first] == ids[:2]
    assert store.cipher.open(first[0].sealed_payload).startswith(b"MSH|")
    second = _tx(store, lambda c: claim_messages(c, "b", now, LEASE, 10))
    assert [m.id for m in second] == ids[2:]  # a's live leases are skipped
    assert _tx(store, lambda c: claim_messages(c, "c", now, LEASE, 10)) == []
    # b's own leases are stale when b claims again (one pipeline loop per node, and a
    # batch whose write failed must not wait for the lease to expire)
    assert [m.id for m in _tx(store, lambda c: claim_messages(c, "b", now, LEASE, 10))] == ids[2:]
    # a dies: once its lease expired, its messages are offered again, oldest first
    later = now + timedelta(seconds=LEASE + 1)
    again = _tx(store, lambda c: claim_messages(c, "b", later, LEASE, 10))
    assert [m.id for m in again] == ids

    plans = [_plan(store, mid, "P1") for mid in ids]
    created = _tx(store, lambda c: apply_plans(c, plans, _now()))
    assert len(created) == 5
    # a late apply by the node whose lease expired changes nothing
    assert _tx(store, lambda c: apply_plans(c, plans, _now())) == []
    with store.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(deliveries)).scalar_one() == 5
        st = {(s, o) for s, o in c.execute(select(messages.c.status, messages.c.lease_owner))}
    assert st == {("processed", None), ("rejected", None)}


# -- the delivery workers' claims ---------------------------------------------------


def test_delivery_claim_takes_each_patient_chain_in_message_order(store: Store) -> None:
    ids, _ = _journal_and_route(store, ["A", "B", "A", "C", "B", "A"])
    # a resend of A's first delivery gets a higher id but keeps A's first message's place
    with store.engine.connect() as c:
        d_first = c.execute(
            select(deliveries.c.id).where(deliveries.c.message_id == ids[0])
        ).scalar_one()
    [resent] = read.resend(store.engine, [d_first], cipher=store.cipher)

    rows = _claim(store, "n1")
    assert [(r.message_id, r.id) for r in rows] == sorted((r.message_id, r.id) for r in rows)
    assert [r.id for r in rows][:2] == [d_first, resent]
    chains = _chains(rows)
    key = store.cipher.hash_id
    assert chains[key("A^^^FAC")] == [ids[0], ids[0], ids[2], ids[5]]
    assert chains[key("B^^^FAC")] == [ids[1], ids[4]]
    assert chains[key("C^^^FAC")] == [ids[3]]
    assert all(store.cipher.open(r.sealed_payload).startswith(b"MSH|") for r in rows)

    # everything is leased to n1: another node gets nothing; n1's own leases are stale
    # when it claims again (its previous round ended), so it gets the same rows
    assert _claim(store, "n2") == []
    assert [r.id for r in _claim(store, "n1")] == [r.id for r in rows]
    # a small window is a prefix in the same order
    later = _now() + timedelta(seconds=LEASE + 1)
    assert [r.id for r in _claim(store, "n2", later, window=3)] == [r.id for r in rows[:3]]


def test_delivery_claim_skips_a_patient_whose_head_waits_for_a_retry(store: Store) -> None:
    ids, _ = _journal_and_route(store, ["A", "B", "A", "C", "A"])
    rows = _claim(store)
    by_mid = {r.message_id: r for r in rows}
    now = _now()
    retry_at = now + timedelta(seconds=60)
    outcomes = [
        # A's head failed: retry in a minute; A's later rows were released unsent
        DeliveryOutcome(by_mid[ids[0]].id, ids[0], "retrying", 1, retry_at, "timeout"),
        DeliveryOutcome(by_mid[ids[2]].id, ids[2], "pending", 0, now, ""),
        DeliveryOutcome(by_mid[ids[4]].id, ids[4], "pending", 0, now, ""),
        # B done, C released
        *_delivered([by_mid[ids[1]]]),
        DeliveryOutcome(by_mid[ids[3]].id, ids[3], "pending", 0, now, ""),
    ]
    _record(store, outcomes)

    assert [r.message_id for r in _claim(store, "n2")] == [ids[3]]  # only C
    # once the retry time has come (and n2's lease on C is over), A's whole chain, in order
    after = retry_at + timedelta(seconds=1)
    assert _chains(_claim(store, "n3", after)) == {
        by_mid[ids[0]].patient_key: [ids[0], ids[2], ids[4]],
        by_mid[ids[3]].patient_key: [ids[3]],
    }


def test_delivery_claim_watermark_waits_for_unprocessed_older_messages(store: Store) -> None:
    # m1 (A), m2 (B) stays `received` in the pipeline, m3 (A), m4 (B)
    ids, plans = _journal_and_route(store, ["A", None, "A", "B"])
    first = _claim(store, "n1")
    assert [r.message_id for r in first] == [ids[0]]  # m3 and m4 are newer than m2

    _tx(store, lambda c: apply_plans(c, [_plan(store, ids[1], "B")], _now()))
    second = _claim(store, "n2")
    # A is blocked behind its head leased to n1; B's chain comes in order
    assert [r.message_id for r in second] == [ids[1], ids[3]]
    _record(store, _delivered(first))
    assert [r.message_id for r in _claim(store, "n1")] == [ids[2]]


def test_delivery_claim_watermark_ignores_other_statuses(store: Store) -> None:
    ids, _ = _journal_and_route(store, ["A"])
    _ingest(store, [_entry(50, status="rejected")])  # newer, not received: not a watermark
    ids2, _ = _journal_and_route(store, ["A"], start=100)
    assert [r.message_id for r in _claim(store)] == [ids[0], ids2[0]]


def test_delivery_claim_respects_other_owners_live_leases(store: Store) -> None:
    ids, _ = _journal_and_route(store, ["A", "A"])
    now = _now()
    # the dead node leased A's head only
    head = _tx(store, lambda c: claim_deliveries(c, "dcc", "dead", now, 2.0, 1))
    assert [r.message_id for r in head] == [ids[0]]
    assert _claim(store, "n1", now + timedelta(seconds=1)) == []  # A's second must wait
    late = _claim(store, "n1", now + timedelta(seconds=3))
    assert [r.message_id for r in late] == ids


def test_paused_destination_is_not_claimed(store: Store) -> None:
    _journal_and_route(store, ["A"])
    read.set_paused(store.engine, "dcc", True, cipher=store.cipher)
    assert _claim(store) == []
    read.set_paused(store.engine, "dcc", False, cipher=store.cipher)
    assert len(_claim(store)) == 1


# -- the CLI's queries ---------------------------------------------------------------


def test_listing_filters(store: Store) -> None:
    base = _now()
    entries = [
        _entry(0, listener="l1", message_type="ADT^A01", received_at=base - timedelta(hours=2)),
        _entry(1, listener="l1", message_type="ADT^A08", received_at=base - timedelta(hours=1)),
        _entry(2, listener="l2", message_type="ORU^R01", received_at=base),
        _entry(3, listener="l2", message_type="ADT^A01", received_at=base, status="rejected"),
    ]
    m0, m1, m2, m3 = (r.message_id for r in _ingest(store, entries))
    _tx(store, lambda c: claim_messages(c, "pipe", _now(), LEASE, 10))
    plans = [
        _plan(store, m0, "IPP1"),
        MessagePlan(m1, "filtered", patient_id_hashes=(store.cipher.hash_id("IPP2"),)),
        _plan(store, m2, "IPP1"),
    ]
    _tx(store, lambda c: apply_plans(c, plans, _now()))

    def ids(**kw: Any) -> list[int]:
        return [m.id for m in read.list_messages(store.engine, store.cipher, **kw)]

    assert ids() == [m3, m2, m1, m0]  # newest first
    assert ids(oldest_first=True, limit=2) == [m0, m1]
    assert ids(status="processed") == [m2, m0]
    assert ids(status="filtered") == [m1]
    assert ids(status="rejected") == [m3]
    assert ids(since=base - timedelta(minutes=90)) == [m3, m2, m1]
    assert ids(until=base - timedelta(minutes=90)) == [m0]
    assert ids(listener="l2") == [m3, m2]
    assert ids(message_type="ADT^A01") == [m3, m0]
    assert ids(message_type="ADT") == [m3, m1, m0]
    assert ids(message_type="*R01") == [m2]
    assert ids(patient=" ipp1 ") == [m2, m0]  # keyed hash: case and spaces ignored
    assert ids(patient="IPP2") == [m1]
    assert ids(patient="NOBODY") == []
    assert ids(listener="l1", status="processed") == [m0]
    assert ids(ids=[m0, m3]) == [m3, m0]

    [view] = read.list_messages(store.engine, store.cipher, ids=[m0])
    assert view.status == "processed" and view.control_id == "C0"
    assert [(d.destination, d.status) for d in view.deliveries] == [("dcc", "pending")]
    assert read.message_detail(store.engine, m0).to_json()["routes"] == ["r1"]
    raw = read.read_raw(store.engine, store.cipher, m0, reader="someone", via="by a test")
    assert raw == entries[0].payload


def test_resend_queue_stats_and_pause(store: Store) -> None:
    ids, _ = _journal_and_route(store, ["A", "B", "C"])
    rows = _claim(store)
    by_mid = {r.message_id: r for r in rows}
    now = _now()
    _record(
        store,
        [
            *_delivered([by_mid[ids[0]]]),
            DeliveryOutcome(by_mid[ids[1]].id, ids[1], "dead", 3, now, "AR"),
            DeliveryOutcome(
                by_mid[ids[2]].id, ids[2], "retrying", 1, now + timedelta(hours=1), "down"
            ),
        ],
    )
    stats = {q.destination: q for q in read.queue_stats(store.engine, ["dcc", "lab"])}
    dcc = stats["dcc"]
    assert (dcc.state, dcc.depth, dcc.retrying, dcc.dead, dcc.delivered) == (
        "active",
        1,
        1,
        1,
        1,
    )
    assert dcc.oldest_pending_age_s is not None and dcc.oldest_pending_age_s >= 0
    assert (stats["lab"].depth, stats["lab"].oldest_pending_age_s) == (0, None)

    [new] = read.resend(store.engine, [by_mid[ids[0]].id], cipher=store.cipher)
    with pytest.raises(NotFound):
        read.resend(store.engine, [10**9], cipher=store.cipher)
    [view] = read.list_messages(store.engine, store.cipher, ids=[ids[0]])
    assert [(d.id, d.status, d.resend_of) for d in view.deliveries] == [
        (by_mid[ids[0]].id, "delivered", None),
        (new, "pending", by_mid[ids[0]].id),
    ]
    kinds = [e.kind for e in read.message_detail(store.engine, ids[0]).events]
    assert "resent" in kinds
    assert read.queue_stats(store.engine, ["dcc"])[0].depth == 2

    read.set_paused(store.engine, "dcc", True, cipher=store.cipher)
    read.set_paused(store.engine, "dcc", True, cipher=store.cipher)  # idempotent (update path)
    assert read.queue_stats(store.engine, ["dcc"])[0].state == "paused"
    assert _claim(store) == []
    read.set_paused(store.engine, "dcc", False, cipher=store.cipher)
    assert read.queue_stats(store.engine, ["dcc"])[0].state == "active"
    assert [r.id for r in _claim(store)] == [new]
    # a destination that is no longer configured still shows up
    views = read.queue_stats(store.engine, ["lab"])
    assert [(q.destination, q.state) for q in views] == [("lab", "active"), ("dcc", "unconfigured")]


# -- the whole engine --------------------------------------------------------------


def test_engine_end_to_end(journal_url: str, tmp_path: Path) -> None:
    patients = ["P0", "P1", "P2"]
    sent: dict[str, list[str]] = {p: [] for p in patients}
    errors: list[BaseException] = []

    def sender(port: int, patient: str) -> None:
        try:
            with MLLPClient("127.0.0.1", port) as client:
                for i in range(10):
                    cid = f"{patient}-{i:02d}"
                    assert msa(client.send_message(adt(cid, patient))) == ("AA", cid)
                    sent[patient].append(cid)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    with MllpPeer() as sink:
        path = write_routes(tmp_path, sink.port, database=journal_url, connections=3)
        with EngineThread(path) as eng:
            port = eng.port("chu-x-adt")
            threads = [threading.Thread(target=sender, args=(port, p)) for p in patients]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert not errors, errors
            assert sink.wait_for(lambda s: len(s.received) >= 30, 20)
            store = eng.engine.store
            assert store is not None

            def all_delivered() -> bool:
                with store.engine.connect() as c:
                    return set(c.execute(select(deliveries.c.status)).scalars()) == {"delivered"}

            assert sink.wait_for(lambda _s: all_delivered(), 10)
            got = sink.control_ids()
    assert sorted(got) == sorted(c for p in patients for c in sent[p])  # each exactly once
    for p in patients:
        assert [c for c in got if c.startswith(f"{p}-")] == sent[p]


def _local_plan(store: Store, mid: int, local: str, *ops: IdentityOp) -> MessagePlan:
    return MessagePlan(
        mid,
        "processed",
        routes=("r1",),
        deliveries=(PlannedDelivery("dcc", "r1"),),
        patient_key=local_ordering_key(store.cipher, "FAC", local),
        patient_local=("FAC", store.cipher.hash_id(local)),
        identity_ops=ops,
        control_id=f"M{mid}",
    )


def test_cross_reference_ops_rekey_waiting_deliveries_in_message_order(store: Store) -> None:
    ids = [r.message_id for r in _ingest(store, [_entry(500 + i) for i in range(5)])]
    _tx(store, lambda c: claim_messages(c, "pipe", _now(), LEASE, 1000))
    cipher = store.cipher
    plans = [
        _local_plan(store, ids[0], "L-MERGED"),
        _local_plan(store, ids[1], "L-SURVIVOR"),
        _local_plan(store, ids[2], "L-OTHER", XrefRecord("FAC", "L-OTHER", "R9")),
        _local_plan(
            store, ids[3], "L-SURVIVOR", XrefRedirect("A40", "FAC", "L-MERGED", "L-SURVIVOR")
        ),
        _local_plan(store, ids[4], "L-MERGED"),  # the old id, after the merge
    ]
    _tx(store, lambda c: apply_plans(c, plans, _now(), cipher=cipher))
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(deliveries.c.message_id, deliveries.c.patient_key).order_by(deliveries.c.id)
        ).all()
    key = {mid: k for mid, k in rows}
    survivor = local_ordering_key(cipher, "FAC", "L-SURVIVOR")
    assert [key[i] for i in (ids[0], ids[1], ids[3], ids[4])] == [survivor] * 4
    assert key[ids[2]] not in (survivor, local_ordering_key(cipher, "FAC", "L-OTHER"))
    view = xref_lookup(store.engine, cipher, "FAC", "L-MERGED")
    assert view.stands_for == "L-SURVIVOR"
    # one chain, in message order, headed by the merged patient's first message
    assert _chains(_claim(store)) == {
        survivor: [ids[0], ids[1], ids[3], ids[4]],
        key[ids[2]]: [ids[2]],
    }


def test_a_merge_rekeys_a_delivery_waiting_for_its_retry(store: Store) -> None:
    cipher = store.cipher
    ids = [r.message_id for r in _ingest(store, [_entry(600 + i) for i in range(2)])]
    _tx(store, lambda c: claim_messages(c, "pipe", _now(), LEASE, 1000))
    first = [_local_plan(store, ids[0], "L-MERGED")]
    _tx(store, lambda c: apply_plans(c, first, _now(), cipher=cipher))
    [head] = _claim(store)
    retry_at = _now() + timedelta(seconds=60)
    _record(store, [DeliveryOutcome(head.id, ids[0], "retrying", 1, retry_at, "timeout")])
    merge = XrefRedirect("A40", "FAC", "L-MERGED", "L-SURVIVOR")
    second = [_local_plan(store, ids[1], "L-SURVIVOR", merge)]
    _tx(store, lambda c: apply_plans(c, second, _now(), cipher=cipher))
    with store.engine.connect() as conn:
        keys = dict(conn.execute(select(deliveries.c.message_id, deliveries.c.patient_key)).all())
    assert keys[ids[0]] == keys[ids[1]] == local_ordering_key(cipher, "FAC", "L-SURVIVOR")
    assert _claim(store) == []  # the surviving patient's message waits behind the retry
