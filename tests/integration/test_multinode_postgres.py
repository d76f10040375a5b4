"""Several engine nodes sharing one PostgreSQL journal share the work without
sending anything twice or out of order, and take over what a dead node had leased."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select

from eai.config import load_config
from eai.messages import IngestResult, JournalEntry
from eai.pipeline import plan_all
from eai.store import (
    MessagePlan,
    PlannedDelivery,
    Store,
    apply_plans,
    claim_deliveries,
    claim_messages,
    insert_entries,
    open_engine,
)
from eai.store.schema import deliveries, events, messages
from standins.mllp import MllpPeer
from tests._nodes import LISTENER, by_patient, entry, node_routes, now, send_alternating
from tests.engine_harness import EngineThread

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def _routes(tmp: Path, node: str, sink_port: int, database: str, batch: int = 200) -> Path:
    """routes.yaml of one node (own data_dir, own listener port, shared database).

    ``batch``: messages per pipeline round and deliveries per claim; small batches
    keep one node from taking all the work in one claim, so the nodes compete."""
    engine = f"  node_id: {node}\n  pipeline_batch: {batch}\n  delivery_batch: {batch}\n"
    return node_routes(tmp, node, sink_port, database, engine)


def _ingest(store: Store, entries: Sequence[JournalEntry]) -> list[IngestResult]:
    async def go() -> list[IngestResult]:
        return [await store.ingest(e) for e in entries]  # in order: ids follow the list

    return asyncio.run(go())


def test_two_nodes_share_one_database_each_message_once_in_order(
    fresh_postgres_db: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    key = os.urandom(32).hex()
    patients = [f"P{p}" for p in range(10)]
    per_patient = 20
    with MllpPeer() as sink:
        node_a = EngineThread(_routes(tmp_path, "node-a", sink.port, fresh_postgres_db, 5), key=key)
        node_b = EngineThread(_routes(tmp_path, "node-b", sink.port, fresh_postgres_db, 5), key=key)
        with node_a, node_b:
            ports = [node_a.port(LISTENER), node_b.port(LISTENER)]
            sent = send_alternating(ports, patients, per_patient)
            total = len(patients) * per_patient
            assert sink.wait_for(lambda s: len(s.received) >= total, 30)
            store_a = node_a.engine.store
            assert store_a is not None

            def settled() -> bool:
                with store_a.engine.connect() as c:
                    st = set(c.execute(select(deliveries.c.status)).scalars())
                    n = c.execute(select(func.count()).select_from(deliveries)).scalar_one()
                return st == {"delivered"} and n == total

            assert sink.wait_for(lambda _s: settled(), 10)
            engines = (node_a.engine, node_b.engine)
        # both engines stopped: whatever either had in flight was finished
        got = sink.control_ids()

    assert len(got) == total and sorted(got) == sorted(c for p in sent.values() for c in p)
    assert by_patient(got) == sent  # order per patient = send order, across nodes
    # both nodes did part of the work: pipelines and delivery workers competed
    for eng in engines:
        assert eng.pipeline is not None and eng.pipeline.processed > 0, eng.node_id
        assert eng.workers["dcc"].sent > 0, eng.node_id
    assert sum(eng.workers["dcc"].sent for eng in engines) == total
    assert sum(eng.pipeline.processed for eng in engines if eng.pipeline) == total

    check = open_engine(fresh_postgres_db)
    try:
        with check.connect() as c:
            attempts = set(c.execute(select(deliveries.c.attempts)).scalars())
            n_attempts = c.execute(
                select(func.count()).select_from(events).where(events.c.kind == "attempt")
            ).scalar_one()
            leased = c.execute(
                select(func.count())
                .select_from(messages)
                .where(messages.c.lease_owner.is_not(None))
            ).scalar_one()
    finally:
        check.dispose()
    assert attempts == {1} and n_attempts == total  # one attempt each: no second send
    assert leased == 0
    # no grouped transaction failed (e.g. a deadlock between the nodes' claims)
    problems = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and "not mailed" not in r.getMessage()  # no SMTP here
    ]
    assert problems == []


def test_a_dead_nodes_leases_expire_and_another_node_delivers(
    fresh_postgres_db: str, tmp_path: Path
) -> None:
    key = os.urandom(32).hex()
    lease = 2.5
    # per patient: the first messages were routed and their deliveries leased by the
    # dead node; its last one was leased by its pipeline but never routed
    order = ["Q0", "Q1", "Q2", "Q0", "Q1", "Q2", "Q0", "Q1", "Q2", "Q0"]
    cids = [f"{p}-{i:03d}" for i, p in enumerate(order)]
    routed = 7
    with MllpPeer() as sink:
        path_b = _routes(tmp_path, "node-b", sink.port, fresh_postgres_db)
        config = load_config(path_b, env={})
        dead = Store(fresh_postgres_db, tmp_path / "dead", key)
        dead.start()
        try:
            _ingest(dead, [entry(c, p) for c, p in zip(cids, order, strict=True)])
            claimed = dead.writer.run_sync(
                lambda c: claim_messages(c, "dead-node", now(), lease, 100)
            )
            assert [m.control_id for m in claimed] == cids
            plans = plan_all(config, dead.cipher, claimed[:routed])
            assert all(p.status == "processed" for p in plans)
            dead.writer.run_sync(lambda c: apply_plans(c, plans, now()))
            leased_at = time.monotonic()
            held = dead.writer.run_sync(
                lambda c: claim_deliveries(c, "dcc", "dead-node", now(), lease, 200)
            )
            assert len(held) == routed
        finally:
            dead.close()  # the dead node never releases its leases

        with EngineThread(path_b, key=key) as node_b:
            assert node_b.engine.node_id == "node-b"
            # node-b's start-up clears only its own leases: the dead node's hold
            time.sleep(max(0.0, leased_at + lease - 0.7 - time.monotonic()))
            assert sink.received == []
            assert sink.wait_for(lambda s: len(s.received) >= len(cids), 15)
            waited = time.monotonic() - leased_at
            time.sleep(0.3)  # a second send, if any, would arrive now
            got = sink.control_ids()
    assert waited >= lease - 0.7
    assert sorted(got) == sorted(cids)  # each once
    assert by_patient(got) == by_patient(cids)


def test_delivery_claim_sees_watermark_and_rows_in_one_snapshot(
    fresh_postgres_db: str, tmp_path: Path
) -> None:
    """Regression: the watermark and the deliveries were read by two statements; on
    PostgreSQL (READ COMMITTED) another node could commit between them a patient's
    earlier message (still ``received``) and its later one (already routed), and the
    later one was claimed ahead of the earlier one. (The other node's pipeline claim
    is left out: it waits for the claims lock that this claim holds.)"""
    store = Store(fresh_postgres_db, tmp_path, os.urandom(32).hex())  # writer not started
    claimer = open_engine(fresh_postgres_db)
    fired: list[str] = []
    ids: list[int] = []

    def other_node(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if fired or "FROM messages" not in statement:
            return
        fired.append(statement)
        # meanwhile, on another node: X-1 then X-2 journaled; X-2 routed, X-1 not yet
        with store.engine.begin() as c:
            c.exec_driver_sql("SET LOCAL lock_timeout = '5s'")  # fail, never hang
            res = insert_entries(c, store.cipher, [entry("X-1", "X"), entry("X-2", "X")])
            ids.extend(r.message_id for r in res)
        with store.engine.begin() as c:
            c.exec_driver_sql("SET LOCAL lock_timeout = '5s'")
            assert apply_plans(c, [_plan(ids[1], "X")], now())

    event.listen(claimer, "after_cursor_execute", other_node)
    try:
        # the other node's clock (or its `now`, taken before ours) is a little behind
        ahead = now() + timedelta(seconds=5)
        with claimer.begin() as conn:
            taken = claim_deliveries(conn, "dcc", "n1", ahead, 60, 200)
        assert fired
        assert [d.message_id for d in taken] == []  # X-2 must wait for X-1
        with claimer.begin() as conn:
            assert claim_deliveries(conn, "dcc", "n1", ahead, 60, 200) == []
        with store.engine.begin() as c:
            apply_plans(c, [_plan(ids[0], "X")], now())
        with claimer.begin() as conn:
            taken = claim_deliveries(conn, "dcc", "n1", ahead, 60, 200)
        assert [d.message_id for d in taken] == ids
    finally:
        event.remove(claimer, "after_cursor_execute", other_node)
        claimer.dispose()
        store.close()


def test_claims_grouped_in_opposite_orders_on_two_nodes_do_not_deadlock(
    fresh_postgres_db: str, tmp_path: Path
) -> None:
    """Regression: each queue had its own advisory lock; the writer groups claims in
    one transaction in no fixed order, so node A (deliveries, then messages) and
    node B (messages, then deliveries) deadlocked; PostgreSQL broke it after
    deadlock_timeout by failing one node's whole grouped transaction."""
    store = Store(fresh_postgres_db, tmp_path, os.urandom(32).hex())  # writer not started
    errors: list[BaseException] = []
    b_claimed = threading.Event()

    def node_b() -> None:
        try:
            with store.engine.begin() as c:
                c.exec_driver_sql("SET LOCAL lock_timeout = '10s'")
                claim_messages(c, "node-b", now(), 60, 10)
                b_claimed.set()
                claim_deliveries(c, "dcc", "node-b", now(), 60, 10)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            b_claimed.set()

    b = threading.Thread(target=node_b)
    try:
        with store.engine.begin() as c:
            c.exec_driver_sql("SET LOCAL lock_timeout = '10s'")
            claim_deliveries(c, "dcc", "node-a", now(), 60, 10)
            b.start()
            # node B now waits for the claims lock (with a lock per queue it got the
            # pipeline's at once, and the next line closed the cycle)
            assert not b_claimed.wait(0.5)
            claim_messages(c, "node-a", now(), 60, 10)
        b.join(15)
        assert not b.is_alive()
        assert errors == []
    finally:
        if b.is_alive():
            b.join(15)
        store.close()


def _plan(mid: int, patient: str) -> MessagePlan:
    return MessagePlan(
        mid,
        "processed",
        routes=("r",),
        deliveries=(PlannedDelivery("dcc", "r"),),
        patient_key=patient,
        control_id=f"{patient}-{mid}",
    )
