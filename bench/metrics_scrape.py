"""Scrape benchmark: ``/metrics`` latency over a journal of 1,000,000 messages.

Run by hand::

    .venv/bin/python bench/metrics_scrape.py [--messages 1000000] [--scrapes 200] \
        [--steps 0,100000,1000000] [--refreshes 20]

Builds a journal with the engine's own schema (``eai.store.Store``, SQLite in a tmp
dir), then bulk-inserts ``--messages`` messages and their outbox rows in realistic
proportions (sqlite3 ``executemany``, one transaction, small payloads: a scrape never
reads them): 96 % processed, 3 % filtered, 1 % rejected, 500 still received; 1.5
deliveries per processed message over four destinations, of which 2,000 pending, 300
retrying, 1,000 held and 5,000 dead, the rest delivered. ``--backlog N`` adds N more
pending rows at build time (a destination down for a while).

Then serves :class:`eai.metrics.endpoint.MetricsEndpoint` on 127.0.0.1 and, for each
of ``--steps`` (cumulative extra pending rows, inserted between steps with the route
``bench-backlog`` and removed at the end), scrapes ``/metrics`` ``--scrapes`` times
over HTTP (a new connection each time, as Prometheus does with this server), and runs
the journal gauges' refresh (what the refresher thread does every
``metrics.gauge_refresh``) ``--refreshes`` times; prints the p50/p95/max wall time and
the process CPU time per scrape and per refresh, the body size, and ``EXPLAIN QUERY
PLAN`` of the refresh's statements. Target (issue 21): under 5 ms per scrape at 1 M
messages, whatever the backlog.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import sqlite3
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from time import perf_counter

from sqlalchemy import text

from eai.config import MetricsConfig, load_config_text
from eai.metrics import destination_meter, journal_commit, listener_meter, planned
from eai.metrics.endpoint import EngineState, JournalGauges, MetricsEndpoint, scrape_statements
from eai.store import Store, utcnow

DESTINATIONS = ("dcc", "dmp", "scad", "emage")
KEY = "00" * 32
"""A fixed key, so that ``--journal`` reopens its journal (no payload is ever read)."""
ROUTES = """
listeners:
  - {name: chu-x-adt, type: mllp, bind: 127.0.0.1:0}
destinations:
""" + "".join(f"  - {{name: {d}, type: mllp, host: 127.0.0.1, port: 9}}\n" for d in DESTINATIONS)


def _messages(n: int, start: datetime) -> Iterator[tuple[object, ...]]:
    rng = random.Random(7)
    for i in range(1, n + 1):
        roll = rng.random()
        status = "processed" if roll < 0.96 else "filtered" if roll < 0.99 else "rejected"
        if i > n - 500:
            status = "received"
        at = _at(start, i)
        yield ("chu-x-adt", at, "hl7v2", status, "127.0.0.1:1", f"C{i}", "ADT^A01", "APP",
               "CHU-X", f"k{i}", 900, b"sealed-payload-stand-in", b"", "", at)  # fmt: skip


def _at(start: datetime, i: int) -> str:
    """The journal's storage format of a time (SQLAlchemy's SQLite DATETIME)."""
    return (start + timedelta(milliseconds=50 * i)).strftime("%Y-%m-%d %H:%M:%S.%f")


def _deliveries(n: int, start: datetime, backlog: int) -> Iterator[tuple[object, ...]]:
    rng = random.Random(11)
    waiting = ["pending"] * (2000 + backlog) + ["retrying"] * 300 + ["held"] * 1000
    waiting += ["dead"] * 5000
    rng.shuffle(waiting)
    processed = [i for i in range(1, n - 499) if rng.random() < 0.96]
    rows = len(processed) * 3 // 2
    tail = set(rng.sample(range(rows), len(waiting)))  # which rows are still waiting
    k = 0
    for j in range(rows):
        mid = processed[j * 2 // 3]
        status = waiting[k] if j in tail else "delivered"
        if j in tail:
            k += 1
        at = _at(start, mid)
        dest = DESTINATIONS[(mid + j) % len(DESTINATIONS)]
        yield (mid, dest, "adt", f"p{mid % 50_000}", f"C{mid}", status, 1, at, at, None)


def build(db: Path, n: int, backlog: int) -> None:
    start = utcnow() - timedelta(milliseconds=50 * n)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA synchronous=OFF")
    with conn:
        conn.executemany(
            "INSERT INTO messages (listener, received_at, content_type, status, peer, "
            "control_id, message_type, sending_application, sending_facility, dedup_key, "
            "size, payload, ack, reject_reason, processed_at, routes) VALUES "
            "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,'adt')",
            _messages(n, start),
        )
        conn.executemany(
            "INSERT INTO deliveries (message_id, destination, route, patient_key, control_id, "
            "status, attempts, created_at, next_attempt_at, delivered_at, last_error) VALUES "
            "(?,?,?,?,?,?,?,?,?,?,'')",
            _deliveries(n, start, backlog),
        )
    conn.execute("ANALYZE")
    conn.close()


def add_pending(db: Path, n: int) -> None:
    """``n`` more pending rows, spread over the destinations (route ``bench-backlog``)."""
    if n <= 0:
        return
    at = _at(utcnow(), 0)
    rows = ((1 + i % 1000, DESTINATIONS[i % len(DESTINATIONS)], "bench-backlog", f"p{i}",
             f"B{i}", "pending", 0, at, at, None) for i in range(n))  # fmt: skip
    conn = sqlite3.connect(db)
    with conn:
        conn.executemany(
            "INSERT INTO deliveries (message_id, destination, route, patient_key, control_id, "
            "status, attempts, created_at, next_attempt_at, delivered_at, last_error) VALUES "
            "(?,?,?,?,?,?,?,?,?,?,'')",
            rows,
        )
    conn.close()


def drop_pending(db: Path) -> None:
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("DELETE FROM deliveries WHERE route = 'bench-backlog'")
    conn.close()


def _scrape(port: int) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return bytes(r.read())


def _cpu_us(fn: Callable[[], object], n: int = 100_000) -> float:
    """Process CPU per call, in microseconds (best of 3 runs of ``n``)."""
    best = math.inf
    for _ in range(3):
        t = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - t) / n * 1e6)
    return best


def instrumentation_cost() -> None:
    """What the instruments add to one message on the hot path (process CPU)."""
    listener = listener_meter("bench-l")
    dest = destination_meter("bench-d")

    def ingest() -> None:  # the engine's _Ingest: look the meter up, count the commit
        listener_meter("bench-l").journaled("received", False)

    def ack() -> None:  # the MLLP listener: time the answer
        started = perf_counter()
        listener.ack_seconds.observe(perf_counter() - started)

    def pipeline() -> None:  # one message planned (a batch of one: the worst case)
        planned(("processed",), ())

    def delivery() -> None:  # one attempt: timed, then its outcome counted
        started = perf_counter()
        dest.send_seconds.observe(perf_counter() - started)
        dest.outcomes(("delivered",))

    def commit() -> None:  # one writer transaction (a message alone in its group commit)
        started = perf_counter()
        journal_commit(perf_counter() - started)

    parts = {"ingest": ingest, "ack": ack, "pipeline": pipeline, "delivery": delivery,
             "commit": commit}  # fmt: skip
    costs = {name: _cpu_us(fn) for name, fn in parts.items()}
    print("instrumentation, process CPU per message (best of 3 x 100,000 calls):")
    for name, us in costs.items():
        print(f"  {name:9} {us:6.2f} us")
    print(f"  {'total':9} {sum(costs.values()):6.2f} us (one delivery per message)")


def _stats(seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[max(0, int(len(ms) * 0.95) - 1)]
    return f"p50 {statistics.median(ms):.2f} ms, p95 {p95:.2f} ms, max {ms[-1]:.2f} ms"


def _pending_in(body: bytes) -> int:
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith("eai_queue_depth{") and 'status="pending"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def measure_scrapes(endpoint: MetricsEndpoint, scrapes: int) -> bytes:
    """HTTP and in-process scrapes, interleaved (both see the same load)."""
    body = _scrape(endpoint.port)  # warm
    walls: list[float] = []
    inner: list[float] = []
    cpu = inner_cpu = 0.0
    for _ in range(scrapes):
        cpu0, t = time.process_time(), time.perf_counter()
        body = _scrape(endpoint.port)
        walls.append(time.perf_counter() - t)
        cpu1, t = time.process_time(), time.perf_counter()
        endpoint.scrape()
        inner.append(time.perf_counter() - t)
        cpu += cpu1 - cpu0
        inner_cpu += time.process_time() - cpu1
    print(f"  {scrapes} scrapes, {len(body)} bytes each; load average {os.getloadavg()[0]:.1f}")
    print(f"    over HTTP (client in this process): {_stats(walls)}, "
          f"CPU {cpu / scrapes * 1000:.2f} ms")  # fmt: skip
    print(f"    collect + format only:              {_stats(inner)}, "
          f"CPU {inner_cpu / scrapes * 1000:.2f} ms")  # fmt: skip
    return body


def measure_refreshes(gauges: JournalGauges, refreshes: int, interval: float) -> None:
    """The refresher's work, on this thread: process CPU and wall time per refresh."""
    gauges.refresh()  # warm
    walls: list[float] = []
    cpu0 = time.process_time()
    for _ in range(refreshes):
        t = time.perf_counter()
        assert gauges.refresh()
        walls.append(time.perf_counter() - t)
    cpu = (time.process_time() - cpu0) / refreshes
    print(f"    refresh ({refreshes}x): {_stats(walls)}, CPU {cpu * 1000:.2f} ms "
          f"= {cpu / interval * 100:.2f} % of a core at gauge_refresh {interval:g} s")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--scrapes", type=int, default=200)
    ap.add_argument("--refreshes", type=int, default=20)
    ap.add_argument("--backlog", type=int, default=0, help="extra pending rows at build time")
    ap.add_argument(
        "--steps",
        default="0,100000,1000000",
        help="extra pending rows (cumulative) to measure at, comma-separated",
    )
    ap.add_argument(
        "--journal",
        type=Path,
        help="keep the journal in this directory and reuse it when it is there (the "
        "build takes minutes); default: a temporary directory",
    )
    args = ap.parse_args()
    steps = [int(x) for x in args.steps.split(",")]
    with tempfile.TemporaryDirectory(prefix="eai-bench-metrics-") as tmp:
        data = args.journal or Path(tmp)
        data.mkdir(parents=True, exist_ok=True)
        db = data / "eai.db"
        fresh = not db.exists()
        store = Store(f"sqlite:///{db}", data, KEY)
        if fresh:
            t0 = time.perf_counter()
            build(db, args.messages, args.backlog)
            print(f"journal built in {time.perf_counter() - t0:.0f} s: {args.messages} messages")
        drop_pending(db)  # a --journal interrupted between steps
        with store.engine.connect() as conn:
            for table in ("messages", "deliveries"):
                count = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()
                print(f"  {table}: {count} rows")
            print(f"  file: {db.stat().st_size / 2**20:.0f} MiB")
            print("query plans of a refresh (EXPLAIN QUERY PLAN):")
            for name, stmt in scrape_statements(DESTINATIONS).items():
                sql = str(stmt.compile(store.engine, compile_kwargs={"literal_binds": True}))  # type: ignore[attr-defined]
                plan = {r[-1] for r in conn.execute(text("EXPLAIN QUERY PLAN " + sql))}
                print(f"  {name}: " + "; ".join(sorted(plan)))
        config = load_config_text(f"engine: {{data_dir: {data}}}\n{ROUTES}", "bench.yaml", env={})
        for d in DESTINATIONS:  # the counters a running engine would have
            destination_meter(d)
        listener_meter("chu-x-adt")
        state = EngineState(
            journal_write=lambda _t: None,
            loop=asyncio.new_event_loop(),
            listeners=lambda: {"chu-x-adt": True},
            workers=lambda: (
                {"pipeline": True, "scheduler": True}
                | {f"delivery:{d}": True for d in DESTINATIONS}
            ),
        )
        # No periodic refresh while the scrapes are timed: a reload's refresh (reconfigure)
        # brings each step's counts; the refresh is measured on its own below.
        metrics = MetricsConfig(bind="127.0.0.1:0", gauge_refresh=300)
        endpoint = MetricsEndpoint(metrics, config, store.engine, state)
        gauges = JournalGauges(store.engine, DESTINATIONS, utcnow, interval=5.0)
        endpoint.start()
        added = 0
        try:
            for extra in steps:
                add_pending(db, extra - added)
                added = extra
                endpoint.reconfigure(config)  # refresh now (on the refresher thread)
                deadline = time.monotonic() + 120
                expected = _pending_in(_scrape(endpoint.port))
                while time.monotonic() < deadline:
                    with store.engine.connect() as conn:
                        want = conn.execute(
                            text("SELECT count(*) FROM deliveries WHERE status='pending'")
                        ).scalar()
                    expected = _pending_in(_scrape(endpoint.port))
                    if expected == want:
                        break
                    time.sleep(0.2)
                print(f"+{extra} pending rows ({expected} pending in the scrape):")
                body = measure_scrapes(endpoint, args.scrapes)
                measure_refreshes(gauges, args.refreshes, 5.0)
        finally:
            endpoint.stop()
            drop_pending(db)
            store.close()
    instrumentation_cost()  # after the scrapes: its meters are not in the body above
    for line in body.decode().splitlines():
        if line.startswith(("eai_queue_depth{", "eai_dead_letters{", "eai_pipeline_backlog ",
                            "eai_metrics_gauges_")):  # fmt: skip
            print("  " + line)


if __name__ == "__main__":
    main()
