"""Follow-up messages (eai.messages.FollowUp) through the journal and a delivery worker.

A final outcome's follow-ups become outbox rows of the source message in the outcome's
transaction (sealed, own media type and control id, the source's patient key and route,
``follow_up_of``, a ``follow_up`` event naming the kind); a retry writes none; a
producer that is not a destination adds them by delivery id; the worker takes them from
a result, from a permanent error, and from a transient one only when it gives up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from eai.config import DestinationConfig, RetryPolicy
from eai.delivery import DeliveryWorker, outbox_item
from eai.errors import NotFound, PermanentDeliveryError, TransientDeliveryError
from eai.messages import (
    MEDIA_HL7V2,
    DeliveryResult,
    FollowUp,
    JournalEntry,
    MessageFacts,
    OutboxItem,
)
from eai.store import (
    DeliveryOutcome,
    MessagePlan,
    PlannedDelivery,
    Store,
    add_follow_ups,
    apply_plans,
    claim_deliveries,
    claim_messages,
    delivery_item,
    message_detail,
    record_outcomes,
    resend,
)
from eai.store.schema import deliveries

pytestmark = pytest.mark.integration

SOURCE = b"MSH|^~\\&|SIL-Y|labo|PFI-X|Organisation-X|||ORU^R01^ORU_R01|015|P|2.5\r"
ZAM = b"MSH|^~\\&|PFI-X|Organisation-X|SIL-Y|labo|||ZAM^Z01^ZAM_Z01|Z0001|P|2.6\r"
KIND = "business_ack ZAM^Z01"


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@pytest.fixture
def store(journal_url: str, tmp_path: Path) -> Iterator[Store]:
    s = Store(journal_url, tmp_path / "data")
    s.start()
    try:
        yield s
    finally:
        s.close()


def _journal(store: Store, *, return_to: str = "back", patient: str = "k") -> int:
    entry = JournalEntry(
        listener="lab",
        payload=SOURCE,
        received_at=datetime.now(UTC),
        control_id="015",
        message_type="ORU^R01",
    )
    mid = asyncio.run(store.ingest(entry)).message_id
    store.writer.run_sync(lambda c: claim_messages(c, "n", _now(), 30.0, 10))
    facts = store.cipher.seal(MessageFacts({"ACK_RECEPTION": "Y"}).to_json())
    planned = PlannedDelivery("dmp", "lab-to-dmp", facts=facts, return_to=return_to)
    plan = MessagePlan(
        mid, "processed", routes=("lab-to-dmp",), deliveries=(planned,), patient_key=patient
    )
    store.writer.run_sync(lambda c: apply_plans(c, [plan], _now()))
    return mid


def _follow_up(destination: str = "back") -> FollowUp:
    return FollowUp(destination, ZAM, "Z0001", KIND)


def test_a_final_outcome_writes_its_follow_ups_as_rows_of_the_source(store: Store) -> None:
    mid = _journal(store)
    (row,) = store.writer.run_sync(lambda c: claim_deliveries(c, "dmp", "n", _now(), 30, 10))
    assert outbox_item(row, store.cipher, 1).return_to == "back"
    done = DeliveryOutcome(row.id, mid, "delivered", 1, _now(), "Success", (_follow_up(),))
    store.writer.run_sync(lambda c: record_outcomes(c, [done], _now(), store.cipher))

    (back,) = store.writer.run_sync(lambda c: claim_deliveries(c, "back", "n", _now(), 30, 10))
    item = outbox_item(back, store.cipher, 1)
    assert (item.message_id, item.payload, item.media_type) == (mid, ZAM, MEDIA_HL7V2)
    assert (item.control_id, item.patient_key, item.route) == ("Z0001", "k", "lab-to-dmp")
    assert item.return_to == ""
    with store.engine.connect() as conn:  # sealed at rest
        sealed = conn.execute(
            select(deliveries.c.payload).where(deliveries.c.id == back.id)
        ).scalar_one()
    assert b"ZAM^Z01" not in sealed

    view = message_detail(store.engine, mid)
    assert [(d.destination, d.status, d.follow_up_of) for d in view.deliveries] == [
        ("dmp", "delivered", None),
        ("back", "pending", row.id),
    ]
    (event,) = [e for e in view.events if e.kind == "follow_up"]
    assert event.delivery_id == back.id
    assert event.detail.startswith(f"{KIND} to back, control id Z0001 (of delivery {row.id}")


def test_a_retry_writes_no_follow_up_and_a_dead_letter_does(store: Store) -> None:
    mid = _journal(store)
    (row,) = store.writer.run_sync(lambda c: claim_deliveries(c, "dmp", "n", _now(), 30, 10))
    retry = DeliveryOutcome(row.id, mid, "retrying", 1, _now(), "busy", (_follow_up(),))
    store.writer.run_sync(lambda c: record_outcomes(c, [retry], _now(), store.cipher))
    assert store.writer.run_sync(lambda c: claim_deliveries(c, "back", "n", _now(), 30, 10)) == []
    (row,) = store.writer.run_sync(lambda c: claim_deliveries(c, "dmp", "n", _now(), 30, 10))
    dead = DeliveryOutcome(row.id, mid, "dead", 2, _now(), "DMPClosed", (_follow_up(),))
    store.writer.run_sync(lambda c: record_outcomes(c, [dead], _now(), store.cipher))
    (back,) = store.writer.run_sync(lambda c: claim_deliveries(c, "back", "n", _now(), 30, 10))
    assert back.control_id == "Z0001"


def test_a_follow_up_without_destination_is_a_warning_not_a_lost_outcome(store: Store) -> None:
    mid = _journal(store, return_to="")
    (row,) = store.writer.run_sync(lambda c: claim_deliveries(c, "dmp", "n", _now(), 30, 10))
    done = DeliveryOutcome(row.id, mid, "delivered", 1, _now(), "Success", (_follow_up(""),))
    store.writer.run_sync(lambda c: record_outcomes(c, [done], _now(), store.cipher))
    view = message_detail(store.engine, mid)
    assert [d.status for d in view.deliveries] == ["delivered"]
    assert any(e.kind == "warning" and KIND in e.detail for e in view.events)


def test_a_receipts_reader_adds_follow_ups_by_delivery_id(store: Store) -> None:
    mid = _journal(store)
    (row,) = store.writer.run_sync(lambda c: claim_deliveries(c, "dmp", "n", _now(), 30, 10))
    source = store.writer.run_sync(lambda c: delivery_item(c, store.cipher, row.id))
    assert isinstance(source, OutboxItem)
    assert (source.payload, source.return_to) == (SOURCE, "back")
    assert source.facts.flags == {"ACK_RECEPTION": "Y"}
    z02 = FollowUp(source.return_to, ZAM, "Z0002", "business_ack ZAM^Z02")
    (new_id,) = store.writer.run_sync(
        lambda c: add_follow_ups(c, store.cipher, row.id, [z02], _now(), why="DSN delivered")
    )
    view = message_detail(store.engine, mid)
    assert [d.id for d in view.deliveries if d.follow_up_of == row.id] == [new_id]
    (event,) = [e for e in view.events if e.kind == "follow_up"]
    assert event.detail.endswith(f"(of delivery {row.id}, DSN delivered)")
    with pytest.raises(NotFound):
        store.writer.run_sync(lambda c: add_follow_ups(c, store.cipher, 999, [z02], _now()))
    with pytest.raises(NotFound):
        store.writer.run_sync(lambda c: delivery_item(c, store.cipher, 999))


def test_resend_keeps_the_return_destination_and_a_follow_ups_origin(store: Store) -> None:
    mid = _journal(store)
    (row,) = store.writer.run_sync(lambda c: claim_deliveries(c, "dmp", "n", _now(), 30, 10))
    done = DeliveryOutcome(row.id, mid, "delivered", 1, _now(), "Success", (_follow_up(),))
    store.writer.run_sync(lambda c: record_outcomes(c, [done], _now(), store.cipher))
    (back,) = store.writer.run_sync(lambda c: claim_deliveries(c, "back", "n", _now(), 30, 10))
    dead = DeliveryOutcome(back.id, mid, "dead", 1, _now(), "AR")
    store.writer.run_sync(lambda c: record_outcomes(c, [dead], _now(), store.cipher))
    again_dmp, again_back = resend(store.engine, [row.id, back.id], cipher=store.cipher)
    assert store.writer.run_sync(lambda c: delivery_item(c, store.cipher, again_dmp)).return_to == (
        "back"
    )
    view = message_detail(store.engine, mid)
    assert {d.id: d.follow_up_of for d in view.deliveries}[again_back] == row.id


class _Scripted:
    """A destination answering from a script: a DeliveryResult or an error per send."""

    def __init__(self, answers: list[DeliveryResult | Exception]) -> None:
        self.answers = answers
        self.seen: list[OutboxItem] = []
        self.done = asyncio.Event()

    async def start(self) -> None:
        pass

    async def send(self, item: OutboxItem) -> DeliveryResult:
        self.seen.append(item)
        if not self.answers:  # past the script: down, and nothing to send back
            raise TransientDeliveryError("down")
        answer = self.answers.pop(0)
        if not self.answers:
            self.done.set()
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def close(self) -> None:
        pass


def _run_worker(
    store: Store, answers: list[DeliveryResult | Exception], attempts: int | None
) -> None:
    config = DestinationConfig(
        name="dmp", type="scripted", retry=RetryPolicy(initial=0.01, max_attempts=attempts)
    )
    dest = _Scripted(list(answers))  # the parameters are shared by both backends

    async def run() -> None:
        stopping = asyncio.Event()
        worker = DeliveryWorker(config, dest, store, "n", pace=0.01)
        task = asyncio.create_task(worker.run(stopping))
        await asyncio.wait_for(dest.done.wait(), 20)
        await asyncio.sleep(0.3)  # the last outcome recorded
        stopping.set()
        await asyncio.wait_for(task, 20)

    asyncio.run(run())
    assert all(i.return_to == "back" for i in dest.seen)


def _back_rows(store: Store) -> list[str]:
    rows = store.writer.run_sync(lambda c: claim_deliveries(c, "back", "n", _now(), 30, 10))
    return [r.control_id for r in rows]


@pytest.mark.parametrize(
    ("answers", "attempts", "expected"),
    [
        ([DeliveryResult("Success", follow_ups=(_follow_up(),))], 3, ["Z0001"]),
        ([PermanentDeliveryError("DMPClosed", follow_ups=(_follow_up(),))], 3, ["Z0001"]),
        (
            [
                TransientDeliveryError("down", follow_ups=(_follow_up(),)),
                TransientDeliveryError("down", follow_ups=(_follow_up(),)),
            ],
            2,
            ["Z0001"],
        ),
        (
            [
                TransientDeliveryError("down", follow_ups=(_follow_up(),)),
                DeliveryResult("Success", follow_ups=(_follow_up(),)),
            ],
            3,
            ["Z0001"],
        ),
        ([TransientDeliveryError("down", follow_ups=(_follow_up(),))], None, []),
    ],
    ids=["delivered", "permanent", "gave-up", "retried-then-delivered", "still-retrying"],
)
def test_the_worker_records_the_follow_ups_of_final_outcomes_only(
    store: Store,
    answers: list[DeliveryResult | Exception],
    attempts: int | None,
    expected: list[str],
) -> None:
    _journal(store)
    _run_worker(store, answers, attempts)
    assert _back_rows(store) == expected
