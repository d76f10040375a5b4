"""Web console benchmark: the overview and the message search over a large journal.

Run by hand::

    .venv/bin/python bench/console.py [--messages 1000000] [--runs 50] [--spacing 1]

Seeds a SQLite journal in a tmp dir with ``--messages`` journaled messages (3
listeners, 20 establishments, one patient id hash and one delivered delivery each, 2
destinations; rows written straight into the tables, the payload one sealed A01),
then times, in process through the console's Starlette app (starlette's TestClient:
server time, HTML rendering included, no network):

- the overview ``GET /overview/rows`` (target < 200 ms p95), with its 24 h sparklines;
  the first request after the seed rolls up the day's 96 intervals into
  ``flow_buckets`` (timed once, apart: "overview, first");
- a search by control id ``GET /messages?control_id=...`` (target < 100 ms p95);
- a search by patient id ``GET /messages?patient=...`` (target < 100 ms p95);
- for reference, the latest page ``GET /messages?all=1``, and the sparklines' share of
  the overview: ``eai.store.flow_series`` alone, called directly.

Wall time per request (min, p50, p95) and the process CPU time per request; the query
plans (SQLite ``EXPLAIN QUERY PLAN``) of the searches. Prints a table and writes JSON
to ``bench/results/`` (gitignored). Touches: files (a tmp dir), DB (SQLite).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert, text
from starlette.testclient import TestClient  # noqa: I001

from eai.config import ConsoleConfig, load_config_text
from eai.console import build_app, hash_password
from eai.store import Store, add_account, flow_series, utcnow
from eai.store.schema import deliveries, messages, patient_ids

REPO = Path(__file__).resolve().parent.parent
ROUTES = """
listeners:
  - {name: adt-1, type: mllp, bind: "127.0.0.1:0"}
  - {name: adt-2, type: mllp, bind: "127.0.0.1:0"}
  - {name: adt-3, type: mllp, bind: "127.0.0.1:0"}
destinations:
  - {name: dcc, type: mllp, host: 127.0.0.1, port: 9}
  - {name: dpi, type: mllp, host: 127.0.0.1, port: 9}
routes:
  - {name: all, from: [adt-1, adt-2, adt-3], to: [dcc, dpi]}
"""
PASSWORD = "bench-password-1234"


def seed(store: Store, n: int, spacing: float = 1.0, chunk: int = 20_000) -> float:
    """``n`` messages ``spacing`` seconds apart, the last one now."""
    started = time.perf_counter()
    sealed = store.cipher.seal(b"MSH|^~\\&|GAM|CHU-1|...\r")
    start = utcnow() - timedelta(seconds=n * spacing)
    hashes = [store.cipher.hash_id(f"PAT{i}") for i in range(min(n, 50_000))]
    with store.engine.begin() as conn:
        for base in range(0, n, chunk):
            ids = range(base + 1, min(n, base + chunk) + 1)
            conn.execute(
                insert(messages),
                [
                    {
                        "id": i,
                        "listener": f"adt-{i % 3 + 1}",
                        "received_at": start + timedelta(seconds=i * spacing),
                        "content_type": "hl7v2",
                        "status": "processed" if i % 50 else "rejected",
                        "peer": "127.0.0.1",
                        "control_id": f"CID{i:08d}",
                        "message_type": "ADT^A01",
                        "sending_application": "GAM",
                        "sending_facility": f"CHU-{i % 20}",
                        "size": 200,
                        "payload": sealed,
                    }
                    for i in ids
                ],
            )
            conn.execute(
                insert(patient_ids),
                [{"message_id": i, "id_hash": hashes[i % len(hashes)]} for i in ids],
            )
            conn.execute(
                insert(deliveries),
                [
                    {
                        "message_id": i,
                        "destination": "dcc" if i % 2 else "dpi",
                        "route": "all",
                        "patient_key": hashes[i % len(hashes)],
                        "control_id": f"CID{i:08d}",
                        "status": "delivered" if i < n - 100 else "pending",
                        "attempts": 1 if i % 97 else 2,
                        "created_at": start + timedelta(seconds=i * spacing),
                        "next_attempt_at": start + timedelta(seconds=i * spacing),
                        "delivered_at": start + timedelta(seconds=i * spacing),
                    }
                    for i in ids
                ],
            )
    with store.engine.connect() as conn:
        conn.execute(text("ANALYZE"))
    return time.perf_counter() - started


def timed(client: TestClient, urls: list[str]) -> dict[str, float]:
    def get(url: str) -> None:
        r = client.get(url)
        assert r.status_code == 200, (url, r.status_code)

    return timed_calls([lambda url=url: get(url) for url in urls])


def timed_calls(calls: list[Callable[[], object]]) -> dict[str, float]:
    walls: list[float] = []
    cpu0 = time.process_time()
    for call in calls:
        t = time.perf_counter()
        call()
        walls.append(time.perf_counter() - t)
    cpu = (time.process_time() - cpu0) / len(calls)
    walls.sort()
    return {
        "min_ms": walls[0] * 1000,
        "p50_ms": statistics.median(walls) * 1000,
        "p95_ms": walls[int(len(walls) * 0.95) - 1] * 1000,
        "cpu_ms": cpu * 1000,
    }


def plans(store: Store) -> dict[str, list[str]]:
    """The plans of the searches' shapes (eai.store.search_message_ids builds them) and
    of the sparklines' (eai.store.flow_series)."""
    out: dict[str, list[str]] = {}
    shapes = [
        (
            "search by control id",
            "SELECT id FROM messages WHERE control_id = 'CID00000042' ORDER BY id DESC LIMIT 50",
        ),
        (
            "search by patient id",
            "SELECT id FROM messages WHERE id IN (SELECT message_id FROM message_patient_ids "
            "WHERE id_hash = 'x') ORDER BY id DESC LIMIT 50",
        ),
        (
            "sparklines, stored intervals",
            "SELECT * FROM flow_buckets WHERE bucket_start >= '2026-01-01' "
            "AND bucket_start < '2026-01-02'",
        ),
        (
            "sparklines, an interval's listeners",
            "SELECT listener || '', count(*), sum(CASE WHEN status = 'rejected' THEN 1 ELSE 0 "
            "END) FROM messages WHERE received_at >= '2026-01-01' AND received_at < "
            "'2026-01-01 00:15' GROUP BY listener || ''",
        ),
        (
            "sparklines, an interval's routes and destinations",
            "SELECT d.destination || '', d.route || '', count(*) FROM deliveries d JOIN "
            "messages m ON m.id = d.message_id WHERE m.received_at >= '2026-01-01' AND "
            "m.received_at < '2026-01-01 00:15' GROUP BY d.destination || '', d.route || ''",
        ),
    ]
    with store.engine.connect() as conn:
        for name, sql in shapes:
            out[name] = [str(r[-1]) for r in conn.execute(text("EXPLAIN QUERY PLAN " + sql))]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument(
        "--spacing",
        type=float,
        default=1.0,
        help="seconds between two messages (1: 86,400 a day; 0.0864: 1,000,000 a day)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="eai-console-bench-") as tmp:
        data = Path(tmp)
        store = Store(f"sqlite:///{data}/eai.db", data)
        seconds = seed(store, args.messages, args.spacing)
        add_account(store.engine, "bench", "viewer", hash_password(PASSWORD))
        config = load_config_text(ROUTES, env={})
        app = build_app(store, lambda: config, ConsoleConfig())
        rng = random.Random(7)
        with TestClient(app, base_url="http://127.0.0.1") as client:
            form = client.get("/login").text
            csrf = form.split('name="csrf" value="')[1].split('"')[0]
            r = client.post(
                "/login",
                data={"user": "bench", "password": PASSWORD, "csrf": csrf},
                follow_redirects=False,
            )
            assert r.status_code == 303, r.text
            t0, c0 = time.perf_counter(), time.process_time()
            client.get("/overview/rows")  # rolls up the last 24 h: timed apart
            first = {
                "wall_ms": (time.perf_counter() - t0) * 1000,
                "cpu_ms": (time.process_time() - c0) * 1000,
            }
            n = args.messages
            results = {
                "overview": timed(client, ["/overview/rows"] * args.runs),
                "search by control id": timed(
                    client,
                    [
                        f"/messages?control_id=CID{rng.randint(1, n):08d}"
                        for _ in range(args.runs * 2)
                    ],
                ),
                "search by patient id": timed(
                    client,
                    [
                        f"/messages?patient=PAT{rng.randint(0, min(n, 50_000) - 1)}"
                        for _ in range(args.runs * 2)
                    ],
                ),
                "latest page": timed(client, ["/messages?all=1"] * args.runs),
                "sparklines alone": timed_calls([lambda: flow_series(store.engine)] * args.runs),
            }
        query_plans = plans(store)
        store.engine.dispose()
    print(
        f"{args.messages} messages, {args.spacing} s apart, seeded in {seconds:.0f} s; "
        f"{platform.python_version()}"
    )
    print(f"{'request':22} {'min ms':>8} {'p50 ms':>8} {'p95 ms':>8} {'cpu ms':>8}")
    for name, r in results.items():
        print(
            f"{name:22} {r['min_ms']:8.1f} {r['p50_ms']:8.1f} {r['p95_ms']:8.1f} {r['cpu_ms']:8.1f}"
        )
    print(
        f"overview, first (rolls up 24 h): {first['wall_ms']:.0f} ms, cpu {first['cpu_ms']:.0f} ms"
    )
    for name, lines in query_plans.items():
        print(f"plan, {name}: " + " / ".join(lines))
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (out / f"console-{stamp}.json").write_text(
        json.dumps(
            {
                "messages": args.messages,
                "spacing_s": args.spacing,
                "overview_first": first,
                "results": results,
                "plans": query_plans,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
