"""Engine nodes on one PostgreSQL: they start together on an empty database, never share
leases, refuse a live twin, release a dead node's leases within seconds, and run a
periodic job on one node only."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hl7.client import MLLPClient
from sqlalchemy import Connection, func, select

from eai._membership import Membership
from eai.config import load_config
from eai.errors import StoreError
from eai.pipeline import plan_all
from eai.store import (
    DEAD_AFTER,
    Store,
    apply_plans,
    claim_deliveries,
    claim_messages,
    insert_entries,
    register_node,
)
from eai.store.schema import deliveries
from standins.mllp import MllpPeer
from tests._mllp import msa
from tests._nodes import LISTENER, by_patient, entry, node_routes, now, send_alternating
from tests._postgres import PostgresServer
from tests.engine_harness import EngineThread, adt

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


@pytest.fixture
def empty_databases(postgres_server: PostgresServer) -> Iterator[list[str]]:
    names = [postgres_server.create_database() for _ in range(5)]
    try:
        yield [postgres_server.url(n) for n in names]
    finally:
        for n in names:
            postgres_server.drop_database(n)


def test_nodes_started_at_the_same_moment_on_an_empty_database_all_come_up(
    empty_databases: list[str], tmp_path: Path
) -> None:
    """Regression: both ran CREATE TABLE; one failed (IntegrityError, pg_type key)."""
    key = os.urandom(32).hex()

    def node(
        url: str, home: Path, gate: threading.Barrier, stores: list[Store], errors: list[object]
    ) -> None:
        gate.wait(10)
        try:
            stores.append(Store(url, home, key))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    for r, url in enumerate(empty_databases):
        gate = threading.Barrier(3)
        errors: list[object] = []
        stores: list[Store] = []
        threads = [
            threading.Thread(target=node, args=(url, tmp_path / f"r{r}n{i}", gate, stores, errors))
            for i in range(3)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for s in stores:
            s.close()
        assert errors == [], f"round {r}: {errors}"
        assert len(stores) == 3


def test_two_nodes_without_node_id_on_one_host_never_share_leases(
    fresh_postgres_db: str, tmp_path: Path
) -> None:
    """Regression: both took the host name as their lease owner, each took the other's
    leases for its own (and cleared them at start-up): 61 % sent twice."""
    key = os.urandom(32).hex()
    patients = [f"H{p}" for p in range(8)]
    per_patient = 15
    total = len(patients) * per_patient
    small = "  pipeline_batch: 5\n  delivery_batch: 5\n"
    with MllpPeer() as sink:
        sink.delay = 0.002  # sends take a little time: leases are held while others claim
        node_a = EngineThread(node_routes(tmp_path, "a", sink.port, fresh_postgres_db, small), key)
        node_b = EngineThread(node_routes(tmp_path, "b", sink.port, fresh_postgres_db, small), key)
        with node_a, node_b:
            assert node_a.engine.node_id == node_b.engine.node_id  # the host name
            assert node_a.engine.lease_owner != node_b.engine.lease_owner
            ports = [node_a.port(LISTENER), node_b.port(LISTENER)]
            send_alternating(ports, patients, per_patient)
            assert sink.wait_for(lambda s: len(s.received) >= total, 30)
            time.sleep(0.5)  # a second send, if any, would arrive now
            store = node_a.engine.store
            assert store is not None
            with store.engine.connect() as c:
                attempts = c.execute(select(func.sum(deliveries.c.attempts))).scalar_one()
        got = sink.control_ids()
    assert len(got) == total, f"{len(got) - len(set(got))} sent twice"
    assert attempts == total


def test_a_second_process_with_a_live_nodes_node_id_is_refused(
    fresh_postgres_db: str, tmp_path: Path
) -> None:
    key = os.urandom(32).hex()
    twin = "  node_id: twin\n"
    with MllpPeer() as sink:
        first = EngineThread(node_routes(tmp_path, "a", sink.port, fresh_postgres_db, twin), key)
        with first:
            second = EngineThread(
                node_routes(tmp_path, "b", sink.port, fresh_postgres_db, twin), key
            )
            t0 = time.monotonic()
            try:
                second.start()
            except StoreError:
                pass
            while second.error is None and time.monotonic() < t0 + 20:  # set after ready
                time.sleep(0.05)
            waited = time.monotonic() - t0
            assert isinstance(second.error, StoreError)
            assert "node_id twin is used by a live node" in str(second.error)
            assert first.engine.listeners  # still serving
        # stopped cleanly: its name is free at once
        third = EngineThread(node_routes(tmp_path, "c", sink.port, fresh_postgres_db, twin), key)
        t0 = time.monotonic()
        with third:
            started = time.monotonic() - t0
    assert DEAD_AFTER <= waited < DEAD_AFTER + 5  # it waited for the row to go stale
    assert started < DEAD_AFTER


def test_a_dead_nodes_leases_are_released_within_seconds_not_at_lease_expiry(
    fresh_postgres_db: str, tmp_path: Path
) -> None:
    """A node dies holding claimed messages (pipeline) and claimed deliveries, with
    leases of 60 s: the survivor sees its heartbeat stop and delivers its work within
    ~DEAD_AFTER + 2 s, and a patient the dead node never touched does not wait for that
    (its ordering key is not theirs: no global watermark holds it)."""
    key = os.urandom(32).hex()
    order = ["D0", "D1", "D2", "D0", "D1", "D2", "D0", "D1", "D2", "D0"]
    cids = [f"{p}-{i:03d}" for i, p in enumerate(order)]
    routed = 7
    with MllpPeer() as sink:
        path = node_routes(tmp_path, "b", sink.port, fresh_postgres_db, "  node_id: survivor\n")
        config = load_config(path, env={})
        with EngineThread(path, key=key) as survivor:
            port = survivor.port(LISTENER)
            dead = Store(fresh_postgres_db, tmp_path / "dead", key)
            try:

                def die_holding(c: Connection) -> int:
                    register_node(c, "dead/1/x", "dead")
                    entries = [entry(cid, p) for cid, p in zip(cids, order, strict=True)]
                    insert_entries(c, dead.cipher, entries)
                    claimed = claim_messages(c, "dead/1/x", now(), 60, 100)
                    assert [m.control_id for m in claimed] == cids
                    plans = plan_all(config, dead.cipher, claimed[:routed])
                    apply_plans(c, plans, now())
                    return len(claim_deliveries(c, "dcc", "dead/1/x", now(), 60, 200))

                with dead.engine.begin() as c:
                    assert die_holding(c) == routed
                died = time.monotonic()
            finally:
                dead.close()  # never beats again
            with MLLPClient("127.0.0.1", port) as client:  # a patient of the survivor
                assert msa(client.send_message(adt("OTHER-1", "OTHER"))) == ("AA", "OTHER-1")
            assert sink.wait_for(lambda s: "OTHER-1" in s.control_ids(), 15)
            other_waited = time.monotonic() - died
            assert sink.wait_for(lambda s: len(s.received) >= len(cids) + 1, 15)
            waited = time.monotonic() - died
            assert survivor.engine.store is not None
        got = sink.control_ids()
    print(f"\ndead node: its work delivered {waited:.1f}s after death; other {other_waited:.1f}s")
    assert waited < DEAD_AFTER + 3  # the leases were for 60 s
    assert other_waited < DEAD_AFTER  # delivered before the dead node's leases are released
    assert sorted(got) == sorted([*cids, "OTHER-1"])
    per_patient = by_patient(got)
    for p in ("D0", "D1", "D2"):
        assert per_patient[p] == [c for c in cids if c.startswith(p)]


def test_a_periodic_job_runs_on_one_node_only_and_moves_when_it_leaves(
    fresh_postgres_db: str, tmp_path: Path
) -> None:
    key = os.urandom(32).hex()
    stores = [Store(fresh_postgres_db, tmp_path / n, key) for n in ("a", "b")]
    runs: list[str] = []

    def job_of(name: str) -> object:
        async def job() -> None:
            runs.append(name)
            await asyncio.sleep(0.05)  # both nodes' runs would overlap

        return job

    async def scenario() -> list[list[str]]:
        a = Membership(stores[0], "a", explicit=True)
        b = Membership(stores[1], "b", explicit=True)
        await a.join()
        await asyncio.sleep(0.01)  # a is the oldest
        await b.join()
        rounds = []
        try:
            jobs = [m.once("digest", job_of(m.name)) for m in (a, b)]  # type: ignore[arg-type]
            for _ in range(4):
                runs.clear()
                await asyncio.gather(*(j() for j in jobs))
                rounds.append(sorted(runs))
            await a.leave()
            runs.clear()
            await asyncio.gather(*(j() for j in jobs))
            rounds.append(sorted(runs))
        finally:
            await a.leave()
            await b.leave()
        return rounds

    try:
        rounds = asyncio.run(scenario())
    finally:
        for s in stores:
            s.close()
    assert rounds == [["a"], ["a"], ["a"], ["a"], ["b"]]
