"""The destination contract through the journal and a running engine.

A journal made before the contract columns (media_type, mapping, facts) gets them
when it is opened, and its rows are delivered with their message's media type;
resend keeps a row's contract; an engine delivers to a destination an OutboxItem that
says its media type, route, mapping and the message's facts.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

import tests._facts_sink  # noqa: F401 - registers the facts-sink destination (reads facts)
import tests._fhir_sink  # noqa: F401 - registers the fhir-sink destination (map: routes)
from eai.config import load_config_text
from eai.delivery import outbox_item
from eai.messages import MEDIA_FHIR_JSON, MEDIA_HL7V2, JournalEntry, MessageFacts
from eai.pipeline import plan_message
from eai.store import (
    DeliveryOutcome,
    MessagePlan,
    PlannedDelivery,
    Store,
    apply_plans,
    claim_deliveries,
    claim_messages,
    record_outcomes,
    resend,
)
from standins.mllp import MllpPeer
from tests._database import database_url
from tests._fhir_sink import ROUTES, FhirSink
from tests._journal_db import journal_db
from tests._mllp import MllpSender, msa
from tests.engine_harness import A01, EngineThread, adt

pytestmark = pytest.mark.integration

CONTRACT_COLUMNS = ("media_type", "mapping", "facts")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _journal_one(store: Store, planned: PlannedDelivery) -> int:
    entry = JournalEntry(
        listener="in",
        payload=b"MSH|^~\\&|APP|FAC|||||ADT^A01|C1|P|2.5\r",
        received_at=datetime.now(UTC),
        control_id="C1",
        message_type="ADT^A01",
    )
    mid = asyncio.run(store.ingest(entry)).message_id
    store.writer.run_sync(lambda c: claim_messages(c, "n", _now(), 30.0, 10))
    plan = MessagePlan(mid, "processed", routes=("r",), deliveries=(planned,), patient_key="k")
    store.writer.run_sync(lambda c: apply_plans(c, [plan], _now()))
    return mid


def _columns(url: str) -> set[str]:
    with journal_db(url) as conn:
        return {column["name"] for column in inspect(conn).get_columns("deliveries")}


def test_a_journal_older_than_the_contract_gets_its_columns(tmp_path: Path) -> None:
    db = database_url(tmp_path / "eai.db")
    store = Store(db, tmp_path / "data")
    store.start()
    _journal_one(store, PlannedDelivery("dcc", "r"))
    store.close()
    with journal_db(db) as conn:  # as an older version left it
        for column in CONTRACT_COLUMNS:
            conn.execute(text(f"ALTER TABLE deliveries DROP COLUMN {column}"))
    assert not _columns(db) & set(CONTRACT_COLUMNS)

    store = Store(db, tmp_path / "data")
    store.start()
    try:
        assert _columns(db) >= set(CONTRACT_COLUMNS)
        (row,) = store.writer.run_sync(lambda c: claim_deliveries(c, "dcc", "n", _now(), 30, 10))
        item = outbox_item(row, store.cipher, 1)
        assert (item.media_type, item.route, item.mapping) == (MEDIA_HL7V2, "r", "")
        assert item.facts.is_empty()
    finally:
        store.close()


def test_resend_keeps_the_contract(tmp_path: Path) -> None:
    store = Store(database_url(tmp_path / "eai.db"), tmp_path / "data")
    store.start()
    try:
        facts = store.cipher.seal(MessageFacts({"DESTDMP": "Y"}).to_json())
        planned = PlannedDelivery(
            "fhir", "r", payload=store.cipher.seal(b"{}"), media_type=MEDIA_FHIR_JSON,
            mapping="pamfr-adt", facts=facts,
        )  # fmt: skip
        _journal_one(store, planned)
        (first,) = store.writer.run_sync(lambda c: claim_deliveries(c, "fhir", "n", _now(), 1, 10))
        dead = DeliveryOutcome(first.id, first.message_id, "dead", 1, _now(), "refused")
        store.writer.run_sync(lambda c: record_outcomes(c, [dead], _now()))
        (again,) = resend(store.engine, [first.id], cipher=store.cipher)
        rows = store.writer.run_sync(lambda c: claim_deliveries(c, "fhir", "n2", _now(), 30, 10))
        (copy,) = rows
        assert copy.id == again
        item = outbox_item(copy, store.cipher, 1)
        assert (item.media_type, item.mapping) == (MEDIA_FHIR_JSON, "pamfr-adt")
        assert item.facts.flags == {"DESTDMP": "Y"}
    finally:
        store.close()


def test_the_engine_hands_a_destination_the_whole_contract(tmp_path: Path) -> None:
    with MllpPeer() as peer:
        config = tmp_path / "routes.yaml"
        config.write_text(ROUTES.format(tmp=tmp_path, port=peer.port))
        with EngineThread(config) as eng:
            with MllpSender(eng.port("in")) as sender:
                assert msa(sender.exchange(A01))[0] == "AA"
            sink = eng.engine.workers["fhir"]._dest  # type: ignore[attr-defined]
            assert isinstance(sink, FhirSink)
            deadline = time.monotonic() + 20
            while not (sink.items and peer.received) and time.monotonic() < deadline:
                time.sleep(0.05)
    (item,) = sink.items
    assert (item.route, item.mapping, item.media_type) == (
        "adt-to-fhir",
        "pamfr-adt",
        MEDIA_FHIR_JSON,
    )
    assert item.payload.startswith(b'{"resourceType":"Bundle"')
    assert item.facts.ins == "279035121518989" and item.facts.flags["DMP_STATUS"] == "ACTIF"
    assert len(peer.received) == 1


STRICT = """
engine: {data_dir: /tmp/x}
listeners:
  - {name: in, type: mllp, bind: "127.0.0.1:0", test_feed: true}
destinations:
  - {name: dmp, type: facts-sink, require_qualified_identity: true}
routes:
  - {name: r, from: [in], to: [dmp]}
"""


def test_a_held_delivery_released_by_a_qualified_identity_gets_its_ins(tmp_path: Path) -> None:
    """Planned while the identity was provisional (no INS in its facts), released by a
    later message that qualifies it: delivered with the qualified INS."""
    config = load_config_text(STRICT, "routes.yaml", env={})
    store = Store(database_url(tmp_path / "eai.db"), tmp_path / "data")
    store.start()
    try:
        provisional = adt("H-1").replace(b"|VALI", b"|PROV")
        assert provisional != adt("H-1")
        for body in (provisional, adt("H-2", trigger="A08")):
            entry = JournalEntry(
                listener="in", payload=body, received_at=datetime.now(UTC), message_type="ADT"
            )
            asyncio.run(store.ingest(entry))
            (claimed,) = store.writer.run_sync(lambda c: claim_messages(c, "n", _now(), 30, 10))
            plan = plan_message(config, store.cipher, claimed)
            store.writer.run_sync(
                lambda c, p=plan: apply_plans(c, [p], _now(), cipher=store.cipher)
            )
        rows = store.writer.run_sync(lambda c: claim_deliveries(c, "dmp", "n", _now(), 30, 10))
        items = [outbox_item(r, store.cipher, 1) for r in rows]
        assert [i.control_id for i in items] == ["H-1", "H-2"]
        assert [i.facts.ins for i in items] == ["279035121518989"] * 2
        assert items[0].facts.flags == items[1].facts.flags  # its own facts kept
    finally:
        store.close()
