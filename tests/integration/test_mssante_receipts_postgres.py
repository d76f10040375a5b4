"""Two engine nodes reading the same application mailbox on one PostgreSQL journal: the same
receipt recorded by both at once is journaled, and its ZAM written, only once (the source
delivery's row is locked while a receipt is recorded)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Connection, func, select

from eai.messages import FollowUp, JournalEntry, MessageFacts
from eai.store import (
    MessagePlan,
    PlannedDelivery,
    Store,
    apply_plans,
    claim_messages,
    open_engine,
    record_receipt,
)
from eai.store.schema import deliveries, events

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.timeout(120)]

SOURCE = b"MSH|^~\\&|SIL-Y|labo|PFI-X|Organisation-X|||ORU^R01^ORU_R01|015|P|2.5\r"
ZAM = FollowUp(
    "lab-return",
    b"MSH|^~\\&|PFI-X|x|SIL-Y|labo|||ZAM^Z02^ZAM_Z01|Z1|P|2.6\r",
    "Z1",
    "business_ack ZAM^Z02",
)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _delivery(store: Store) -> int:
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
    planned = PlannedDelivery("mss", "lab-to-mss", facts=facts, return_to="lab-return")
    plan = MessagePlan(mid, "processed", routes=("lab-to-mss",), deliveries=(planned,))
    store.writer.run_sync(lambda c: apply_plans(c, [plan], _now()))
    with store.engine.connect() as conn:
        return int(
            conn.execute(select(deliveries.c.id).where(deliveries.c.message_id == mid)).scalar_one()
        )


def test_two_nodes_recording_one_receipt_at_once_journal_it_once(
    fresh_postgres_db: str, tmp_path: Path
) -> None:
    store = Store(fresh_postgres_db, tmp_path, os.urandom(32).hex())
    store.start()
    try:
        did = _delivery(store)
        engine = open_engine(fresh_postgres_db)
        first, second = engine.connect(), engine.connect()
        try:
            tx = first.begin()
            made = record_receipt(first, store.cipher, did, "<r1@x>", "DSN", [ZAM], _now())
            assert made is not None and len(made) == 1
            outcome: dict[str, object] = {}

            def other_node(conn: Connection) -> None:
                with conn.begin():
                    outcome["made"] = record_receipt(
                        conn, store.cipher, did, "<r1@x>", "DSN", [ZAM], _now()
                    )

            thread = threading.Thread(target=other_node, args=(second,))
            thread.start()
            time.sleep(1.0)
            assert thread.is_alive()  # waits on the source delivery's row lock
            tx.commit()
            thread.join(30)
            assert not thread.is_alive()
            assert outcome["made"] is None  # it saw the first node's receipt
        finally:
            first.close()
            second.close()
        with engine.connect() as conn:
            receipts = conn.execute(
                select(func.count()).select_from(events).where(events.c.kind == "receipt")
            ).scalar_one()
            zams = conn.execute(
                select(func.count()).select_from(deliveries).where(deliveries.c.follow_up_of == did)
            ).scalar_one()
        assert (receipts, zams) == (1, 1)
        engine.dispose()
    finally:
        store.close()
