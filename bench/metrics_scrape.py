"""Scrape benchmark: ``/metrics`` latency over a journal of 1,000,000 messages.

Run by hand::

    .venv/bin/python bench/metrics_scrape.py [--messages 1000000] [--scrapes 200]

Builds a journal with the engine's own schema (``eai.store.Store``, SQLite in a tmp
dir), then bulk-inserts ``--messages`` messages and their outbox rows in realistic
proportions (sqlite3 ``executemany``, one transaction, small payloads: a scrape never
reads them): 96 % processed, 3 % filtered, 1 % rejected, 500 still received; 1.5
deliveries per processed message over four destinations, of which 2,000 pending, 300
retrying, 1,000 held and 5,000 dead, the rest delivered. ``--backlog N`` adds N more
pending rows (a destination down for a while).

Then serves :class:`eai.metrics.endpoint.MetricsEndpoint` on 127.0.0.1 and scrapes
``/metrics`` ``--scrapes`` times over HTTP (a new connection each time, as Prometheus
does with this server); prints the p50/p95/max wall time per scrape, the process CPU
time per scrape, the body size, and ``EXPLAIN QUERY PLAN`` of every statement a scrape
runs. Target (issue 21): under 5 ms per scrape at 1 M messages.
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
from eai.metrics.endpoint import EngineState, MetricsEndpoint, scrape_statements
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--scrapes", type=int, default=200)
    ap.add_argument("--backlog", type=int, default=0, help="extra pending rows")
    ap.add_argument(
        "--journal",
        type=Path,
        help="keep the journal in this directory and reuse it when it is there (the "
        "build takes minutes); default: a temporary directory",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="eai-bench-metrics-") as tmp:
        data = args.journal or Path(tmp)
        data.mkdir(parents=True, exist_ok=True)
        fresh = not (data / "eai.db").exists()
        store = Store(f"sqlite:///{data}/eai.db", data, KEY)
        if fresh:
            t0 = time.perf_counter()
            build(data / "eai.db", args.messages, args.backlog)
            print(f"journal built in {time.perf_counter() - t0:.0f} s: {args.messages} messages")
        with store.engine.connect() as conn:
            for table in ("messages", "deliveries"):
                count = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()
                print(f"  {table}: {count} rows")
            print(f"  file: {(data / 'eai.db').stat().st_size / 2**20:.0f} MiB")
            print("query plans (EXPLAIN QUERY PLAN):")
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
        endpoint = MetricsEndpoint(MetricsConfig(bind="127.0.0.1:0"), config, store.engine, state)
        endpoint.start()
        try:
            body = _scrape(endpoint.port)  # warm: statements compiled, pages cached
            walls: list[float] = []
            inner: list[float] = []
            cpu = inner_cpu = 0.0
            for _ in range(args.scrapes):  # interleaved: both see the same load
                cpu0, t = time.process_time(), time.perf_counter()
                body = _scrape(endpoint.port)
                walls.append(time.perf_counter() - t)
                cpu1, t = time.process_time(), time.perf_counter()
                endpoint.scrape()
                inner.append(time.perf_counter() - t)
                cpu += cpu1 - cpu0
                inner_cpu += time.process_time() - cpu1
            cpu /= args.scrapes
            inner_cpu /= args.scrapes
        finally:
            endpoint.stop()
            store.close()
    print(f"{args.scrapes} scrapes, {len(body)} bytes each; load average {os.getloadavg()[0]:.1f}")
    print(f"  over HTTP (client in this process): {_stats(walls)}, CPU {cpu * 1000:.2f} ms")
    print(f"  collect + format only:              {_stats(inner)}, CPU {inner_cpu * 1000:.2f} ms")
    instrumentation_cost()  # after the scrapes: its meters are not in the body above
    for line in body.decode().splitlines():
        if line.startswith(("eai_queue_depth{", "eai_dead_letters{", "eai_pipeline_backlog ")):
            print("  " + line)


if __name__ == "__main__":
    main()
