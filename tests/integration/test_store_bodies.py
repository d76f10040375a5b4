"""Large payloads live out of their rows (``eai.store._bodies``), on SQLite and PostgreSQL.

A sealed payload over ``INLINE_MAX`` goes to ``message_bodies`` / ``delivery_bodies``
and its row holds the marker b""; every reader (the pipeline's and the delivery's
claims, ``read_raw``, the listing, a resend, ``delivery_item``) gets it back, and a row
written before this layout (its large payload inline) still reads. On SQLite, leasing
such a message no longer copies its payload into the WAL.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, text

from eai.messages import JournalEntry
from eai.store import (
    DeliveryOutcome,
    MessagePlan,
    PlannedDelivery,
    Store,
    apply_plans,
    claim_deliveries,
    claim_messages,
    delivery_item,
    read_raw,
    record_outcomes,
    resend,
)
from eai.store._bodies import INLINE_MAX, OUT_OF_ROW
from eai.store._schema import delivery_bodies, message_bodies
from eai.store.schema import deliveries, messages

pytestmark = pytest.mark.integration

LEASE = 30.0
BIG = 300_000


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@pytest.fixture
def store(journal_url: str, tmp_path: Path) -> Iterator[Store]:
    s = Store(journal_url, tmp_path / "data", None)
    s.start()
    try:
        yield s
    finally:
        s.close()


def _entry(cid: str, size: int) -> JournalEntry:
    body = os.urandom(size // 2).hex().encode()  # incompressible, printable
    return JournalEntry(
        listener="l1",
        payload=b"MSH|^~\\&|APP|FAC|||||ORU^R01|" + cid.encode() + b"|P|2.5\rOBX|1|ED|" + body,
        received_at=datetime.now(UTC),
        status="received",
        dedup_key=f"l1|APP|FAC|{cid}",
        control_id=cid,
        message_type="ORU^R01",
        sending_application="APP",
        sending_facility="FAC",
        ack=f"MSH|^~\\&|\rMSA|AA|{cid}".encode(),
    )


def _ingest(store: Store, *entries: JournalEntry) -> list[int]:
    async def go() -> list[int]:
        return [(await store.ingest(e)).message_id for e in entries]

    return asyncio.run(go())


def _count(store: Store, table: object) -> int:
    with store.engine.connect() as c:
        return int(c.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_large_message_payload_is_out_of_row_and_reads_back(store: Store) -> None:
    big, small = _entry("BIG", BIG), _entry("SMALL", 600)
    big_id, small_id = _ingest(store, big, small)
    with store.engine.connect() as c:
        rows = dict(c.execute(select(messages.c.id, messages.c.payload)).all())
    assert bytes(rows[big_id]) == OUT_OF_ROW
    assert len(rows[small_id]) <= INLINE_MAX and store.cipher.open(rows[small_id]) == small.payload
    assert _count(store, message_bodies) == 1
    # the pipeline's claim
    claimed = store.writer.run_sync(lambda c: claim_messages(c, "pipe", _now(), LEASE, 10))
    by_id = {m.id: m for m in claimed}
    assert store.cipher.open(by_id[big_id].sealed_payload) == big.payload
    assert store.cipher.open(by_id[small_id].sealed_payload) == small.payload
    # a person's read, recorded
    raw = read_raw(store.engine, store.cipher, big_id, reader="t", via="test")
    assert raw == big.payload
    # the listing's payload reads (listing fields, ``where_field``)
    from eai.store._listing import _EngineQueries

    assert {
        mid: store.cipher.open(bytes(p))
        for mid, p in _EngineQueries(store.engine).payloads([big_id, small_id])
    } == {big_id: big.payload, small_id: small.payload}
    # a retransmission of the large one (same key, same content) is a duplicate of it
    again = asyncio.run(store.ingest(big))
    assert again.duplicate and again.message_id == big_id


def test_large_delivery_payload_is_out_of_row_claimed_and_resent(store: Store) -> None:
    message = _entry("M1", 800)
    [mid] = _ingest(store, message)
    store.writer.run_sync(lambda c: claim_messages(c, "pipe", _now(), LEASE, 10))
    output = os.urandom(BIG)
    plan = MessagePlan(
        mid,
        "processed",
        routes=("r1",),
        deliveries=(
            PlannedDelivery("dcc", "r1", payload=store.cipher.seal(output), mapping="crbio"),
            PlannedDelivery("lab", "r1"),  # the message as received: NULL, as before
        ),
        patient_key=store.cipher.hash_id("P^^^FAC"),
        control_id="M1",
    )
    store.writer.run_sync(lambda c: apply_plans(c, [plan], _now()))
    with store.engine.connect() as c:
        stored = dict(c.execute(select(deliveries.c.destination, deliveries.c.payload)).all())
    assert stored == {"dcc": OUT_OF_ROW, "lab": None}
    assert _count(store, delivery_bodies) == 1
    [dcc] = store.writer.run_sync(lambda c: claim_deliveries(c, "dcc", "n1", _now(), LEASE, 10))
    assert store.cipher.open(dcc.sealed_payload) == output
    [lab] = store.writer.run_sync(lambda c: claim_deliveries(c, "lab", "n1", _now(), LEASE, 10))
    assert store.cipher.open(lab.sealed_payload) == message.payload
    outcome = DeliveryOutcome(dcc.id, mid, "delivered", 1, _now(), "201")
    store.writer.run_sync(lambda c: record_outcomes(c, [outcome], _now()))
    [again] = resend(store.engine, [dcc.id], cipher=store.cipher)
    assert _count(store, delivery_bodies) == 2
    with store.engine.connect() as c:
        assert delivery_item(c, store.cipher, again).payload == output
        assert delivery_item(c, store.cipher, dcc.id).payload == output


def test_rows_written_before_the_body_tables_still_read(store: Store) -> None:
    """A journal from before this layout holds large payloads in their rows."""
    entry = _entry("OLD", BIG)
    sealed = store.cipher.seal(entry.payload)
    with store.engine.begin() as c:
        mid = c.execute(
            insert(messages)
            .values(
                listener="l1",
                received_at=_now(),
                content_type="hl7v2",
                status="received",
                control_id="OLD",
                message_type="ORU^R01",
                size=len(entry.payload),
                payload=sealed,
            )
            .returning(messages.c.id)
        ).scalar_one()
    [claimed] = store.writer.run_sync(lambda c: claim_messages(c, "pipe", _now(), LEASE, 10))
    assert claimed.id == mid and store.cipher.open(claimed.sealed_payload) == entry.payload
    assert read_raw(store.engine, store.cipher, mid, reader="t", via="test") == entry.payload


@pytest.mark.sqlite_only  # SQLite's WAL: what PostgreSQL's TOAST already spares it
def test_leasing_a_large_message_does_not_copy_it_into_the_wal(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}/j.db", tmp_path / "data", None)
    store.start()
    try:
        _lease_and_settle_in_few_pages(store, tmp_path / "j.db-wal")
    finally:
        store.close()


def _lease_and_settle_in_few_pages(store: Store, wal: Path) -> None:
    [mid] = _ingest(store, _entry("BIG", BIG))
    with store.engine.connect() as c:
        c.execute(text("PRAGMA wal_checkpoint(TRUNCATE)")).all()
    assert wal.stat().st_size == 0
    [claimed] = store.writer.run_sync(lambda c: claim_messages(c, "pipe", _now(), LEASE, 10))
    assert claimed.id == mid
    plan = MessagePlan(mid, "filtered", control_id="BIG")
    store.writer.run_sync(lambda c: apply_plans(c, [plan], _now()))
    # Two updates of the row (lease, status): a few pages each, not the 300 kB payload
    # twice over (610 kB per update before the body tables).
    assert wal.stat().st_size < 64 * 1024, wal.stat().st_size
