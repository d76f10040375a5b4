"""Journal entries and backend-independent checks of the one-entry fast insert (eai/store).

Touches: the database of the Store passed in (tests/integration/test_journal_fast_insert*.py).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from eai.errors import StoreError
from eai.messages import IngestResult, JournalEntry
from eai.store import Store, insert_entries
from eai.store._journal import SMALL_BATCH
from eai.store.schema import events, messages

# A time with microseconds, one without (SQLite stores ".000000"), one in another zone.
TIMES = [
    datetime(2024, 3, 9, 23, 59, 58, 123456, tzinfo=UTC),
    datetime(2024, 3, 10, 1, 2, 3, tzinfo=UTC),
    datetime(2024, 7, 1, 2, 30, 0, 7, tzinfo=timezone(timedelta(hours=2))),
]


def entry(
    cid: str,
    *,
    key: str | None = "auto",
    at: datetime | None = None,
    status: str = "received",
    reason: str = "",
    ack: bytes | None = None,
) -> JournalEntry:
    return JournalEntry(
        listener="img",
        payload=f"payload {cid} ".encode() * 50 + bytes(range(256)),
        received_at=at or datetime.now(UTC),
        status=status,  # type: ignore[arg-type]
        content_type="dicom",
        peer="10.1.2.3:104" + "x" * 200,  # truncated to 128
        dedup_key=f"img|{cid}" if key == "auto" else key,
        control_id=cid,
        message_type="DICOM^CT",
        sending_application="CT1",
        sending_facility="F",
        ack=ack if ack is not None else f"MSH|^~\\&|\rMSA|AA|{cid}".encode(),
        reject_reason=reason,
    )


def journal(store: Store, entries: list[JournalEntry]) -> list[IngestResult]:
    """One batch, as the writer runs it (one transaction)."""
    with store.engine.connect() as conn, conn.begin():
        return insert_entries(conn, store.cipher, entries)


def message_row(store: Store, mid: int) -> dict[str, Any]:
    with store.engine.connect() as c:
        row = c.execute(select(messages).where(messages.c.id == mid)).one()._asdict()
    row["payload"] = store.cipher.open(row["payload"])
    return row


def event_rows(store: Store, mid: int) -> list[dict[str, Any]]:
    with store.engine.connect() as c:
        rows = c.execute(
            select(events).where(events.c.message_id == mid).order_by(events.c.id)
        ).all()
    return [r._asdict() for r in rows]


def counts(store: Store) -> tuple[int, int]:
    with store.engine.connect() as c:
        return (
            c.execute(select(func.count()).select_from(messages)).scalar_one(),
            c.execute(select(func.count()).select_from(events)).scalar_one(),
        )


def _fillers(prefix: str) -> list[JournalEntry]:
    """Entries enough to make any batch they join take the SQLAlchemy statements."""
    return [entry(f"{prefix}-{i}") for i in range(SMALL_BATCH)]


def _without_ids(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("id", "message_id", "dedup_key")}


# -- checks shared with the PostgreSQL cases -----------------------------------


def check_single_entry_reads_back_like_a_batched_one(store: Store) -> None:
    variants = [
        {"at": TIMES[0]},
        {"at": TIMES[1]},
        {"at": TIMES[2], "status": "rejected", "reason": "AR: unknown SOP class"},
        {"at": TIMES[0], "key": None, "ack": b""},
    ]
    for n, kw in enumerate(variants):
        alone = entry(f"alone-{n}", **kw)
        (one,) = journal(store, [alone])  # the driver-SQL path
        # a batch past SMALL_BATCH takes the SQLAlchemy statements
        batched = journal(store, [entry(f"batch-{n}", **kw), *_fillers(f"other-{n}")])
        assert not one.duplicate and not batched[0].duplicate

        got = message_row(store, one.message_id)
        ref = message_row(store, batched[0].message_id)
        # every column as the journal means it...
        assert got["id"] == one.message_id
        expected_at = kw["at"].astimezone(UTC).replace(tzinfo=None)
        assert got["received_at"] == expected_at
        assert got["received_at"].microsecond == expected_at.microsecond
        assert got["payload"] == alone.payload
        assert got["size"] == len(alone.payload)
        assert got["ack"] == alone.ack and isinstance(got["ack"], bytes)
        assert got["dedup_key"] == alone.dedup_key
        assert got["peer"] == alone.peer[:128]
        assert got["status"] == alone.status
        assert got["reject_reason"] == alone.reject_reason
        assert got["routes"] == ""
        assert got["processed_at"] is None and got["lease_owner"] is None
        assert got["lease_until"] is None
        # ...and exactly as the SQLAlchemy statements store it
        assert _without_ids(got) == {
            **_without_ids(ref),
            "control_id": alone.control_id,
            "payload": alone.payload,
            "ack": alone.ack,
        }
        assert ref["payload"] != got["payload"]  # the comparison above is not vacuous

        evs = event_rows(store, one.message_id)
        ref_evs = event_rows(store, batched[0].message_id)
        assert [e["kind"] for e in evs] == [
            "received",
            "rejected" if alone.status == "rejected" else "acknowledged",
        ]
        assert evs[0]["id"] < evs[1]["id"]
        assert all(e["at"] == expected_at and e["delivery_id"] is None for e in evs)
        assert evs[0]["detail"] == f"listener=img bytes={len(alone.payload)} peer={alone.peer}"
        second = "ack=" + ("" if not alone.ack else "AA")
        if alone.reject_reason:
            second += f" reason={alone.reject_reason}"
        assert evs[1]["detail"] == second
        assert [_without_ids(e) for e in evs] == [_without_ids(e) for e in ref_evs]


def check_duplicates(store: Store) -> None:
    first = journal(store, [entry("d1")])[0]
    before = counts(store)
    # against the journal, alone and in a small batch (driver SQL)
    again = journal(store, [entry("d1", ack=b"another ack")])[0]
    assert again == IngestResult(first.message_id, True, b"MSH|^~\\&|\rMSA|AA|d1")
    batch = journal(store, [entry("d1"), entry("d1")])
    assert batch == [again, again]
    # no new message; each copy is a "retransmitted" event of the original's journey
    assert counts(store) == (before[0], before[1] + 3)
    kinds = [e["kind"] for e in event_rows(store, first.message_id)]
    assert kinds == ["received", "acknowledged", *["retransmitted"] * 3]
    # in a batch past SMALL_BATCH (the SQLAlchemy statements), the same answers
    big = journal(store, [entry("d1"), *_fillers("dup-filler"), entry("d1")])
    assert big[0] == big[-1] == again
    assert not any(r.duplicate for r in big[1:-1])
    assert counts(store) == (before[0] + SMALL_BATCH, before[1] + 5 + 2 * SMALL_BATCH)
    before = counts(store)
    kinds = [e["kind"] for e in event_rows(store, first.message_id)]
    assert kinds == ["received", "acknowledged", *["retransmitted"] * 5]

    # a copy within the batch gets the first copy's ACK; results follow the entries
    res = journal(
        store,
        [entry("d2", ack=b"ack one"), entry("d1"), entry("d2", ack=b"ack two"), entry("d3")],
    )
    assert [r.duplicate for r in res] == [False, True, True, False]
    assert res[1] == again
    assert res[2] == IngestResult(res[0].message_id, True, b"ack one")
    assert res[3].message_id > res[0].message_id
    assert counts(store) == (before[0] + 2, before[1] + 4 + 2)
    assert message_row(store, res[0].message_id)["ack"] == b"ack one"
    assert message_row(store, res[3].message_id)["control_id"] == "d3"

    # one new entry and a copy of it in a batch: one row, via the one-entry statements
    res = journal(store, [entry("d4", ack=b"four"), entry("d4"), entry("d1")])
    assert res[1] == IngestResult(res[0].message_id, True, b"four")
    assert res[2] == again
    assert counts(store) == (before[0] + 3, before[1] + 6 + 2 + 2)
    # entries without a dedup key are never duplicates
    a, b = journal(store, [entry("n", key=None), entry("n", key=None)])
    (c,) = journal(store, [entry("n", key=None)])
    assert not (a.duplicate or b.duplicate or c.duplicate)
    assert len({a.message_id, b.message_id, c.message_id}) == 3


def check_batch_ids_follow_entry_order(store: Store) -> None:
    journal(store, [entry("warm-up")])
    for size in (2, 7, 40):
        cids = [f"o{size}-{i}" for i in range(size)]
        res = journal(store, [entry(c) for c in cids])
        ids = [r.message_id for r in res]
        assert ids == sorted(ids) and len(set(ids)) == size
        assert [message_row(store, i)["control_id"] for i in ids] == cids
        for mid in ids:
            assert [e["kind"] for e in event_rows(store, mid)] == ["received", "acknowledged"]


def check_failed_write_rolls_back_its_transaction(store: Store) -> None:
    """``events`` refuses rows of control id 'bad' (a trigger set up by the caller)."""
    before = counts(store)
    with pytest.raises(IntegrityError):
        journal(store, [entry("bad")])  # the message row went in, then events failed
    assert counts(store) == before  # ...and the message row was rolled back
    with pytest.raises(IntegrityError):
        journal(store, [entry("ok-0"), entry("bad")])
    assert counts(store) == before
    ok = journal(store, [entry("ok-1")])[0]
    assert message_row(store, ok.message_id)["control_id"] == "ok-1"


def check_writer_isolates_a_failing_entry(store: Store) -> None:
    """Grouped with good entries, the failing one is retried alone and fails alone."""
    before = counts(store)

    async def go() -> list[IngestResult | BaseException]:
        tasks = [asyncio.ensure_future(store.ingest(entry(c))) for c in ("good-1", "bad", "good-2")]
        await asyncio.sleep(0.05)  # all three queued before the writer runs: one batch
        store.start()
        return await asyncio.gather(*tasks, return_exceptions=True)

    good1, bad, good2 = asyncio.run(go())
    assert isinstance(bad, StoreError) and "refused" in str(bad)
    assert isinstance(bad.__cause__, IntegrityError)
    assert isinstance(good1, IngestResult) and isinstance(good2, IngestResult)
    assert good1.message_id < good2.message_id
    # the grouped transaction failed and was rolled back; each was retried on its own
    assert store.writer.commits == 2
    assert counts(store) == (before[0] + 2, before[1] + 4)
    assert message_row(store, good1.message_id)["control_id"] == "good-1"
    assert message_row(store, good2.message_id)["control_id"] == "good-2"
    # and the writer goes on journaling
    assert store.writer.journal_blocking(entry("good-3"), 10).message_id > good2.message_id


# -- SQLite --------------------------------------------------------------------
