"""One and two ``eai run`` nodes on one PostgreSQL behind HAProxy: throughput and CPU per message.

Run by hand::

    .venv/bin/python bench/nodes_postgres.py [--nodes 1,2] [--rounds 2] [--seconds 10]

Every party is its own process, all on 127.0.0.1:

- PostgreSQL: a server of the bench's own in a tmp dir (``tests/_postgres.py``:
  Debian's ``initdb``/``pg_ctl``, fsync and synchronous_commit on, the durable
  promise), a new database for each configuration, stopped at the end;
- the nodes: ``eai run`` as ``bench/mllp_ingest.py`` starts it (same routes: one MLLP
  listener routed to one MLLP destination), on the shared database, with one key
  (the first node's ``eai.key`` copied into the others' data dirs);
- HAProxy in TCP mode in front of them, round robin, health-checked by a TCP connect
  (``tests/_nodes.py``, as the failover test configures it);
- one MLLP sink (``standins.mllp.MllpPeer``) that every node delivers to;
- the senders of ``bench/mllp_ingest.py``: ``--senders`` connections through HAProxy,
  each waiting for its ACK (PAM FR A01, unique MSH-10, 5 patients).

Each configuration (``--nodes``, run in turns ``--rounds`` times: 1, 2, 1, 2...):
the CPU spent idle (``--idle-seconds``: heartbeats, polls), warm-up, one sender (ACK
p50), ``--senders`` senders for ``--seconds``, then the wait until the sink holds
every message. Reported per run: durable-ACK msgs/s, ACK p50/p99, end-to-end
delivered msgs/s, and CPU per message of each node, of PostgreSQL (all its
processes: the backends and the WAL writer, checkpointer...) and of HAProxy, from
/proc, from the start of the main phase until the sink had everything; the journal
rows per message (present, and written: ``pg_stat_user_tables``); the load average.
CPU per message holds up on a shared machine where msgs/s does not, and projects to
bigger machines: msgs/s per core = 1e6 / (engine + PostgreSQL us per message).

Prints a table and writes JSON to ``bench/results/`` (gitignored); exits 1 when an
ACK was not AA or the sink did not get every message. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench._measure import (  # noqa: E402
    COMMITS,
    cpu_seconds,
    journal_rows,
    postmaster_pid,
    process_tree_cpu,
)
from bench.mllp_ingest import (  # noqa: E402
    RESULTS,
    EngineProcess,
    Peer,
    _free_port,
    _machine,
    _settle,
    run_senders,
    start_postgres,
)
from eai.store import KEY_FILE  # noqa: E402
from tests._nodes import haproxy_config, start_haproxy  # noqa: E402
from tests._postgres import PostgresServer  # noqa: E402
from tests._proc import wait_port  # noqa: E402


def _many_per_peer(routes: str) -> str:
    """Every connection reaches a node from HAProxy's address: lift the per-address cap
    (8 senders and the health checks would exceed the default 8)."""
    line = "    allowed_senders: [CHU-X]\n"
    assert line in routes
    return routes.replace(line, line + "    max_connections_per_peer: 64\n", 1)


def _us(seconds: float, messages: int) -> int:
    return round(seconds / max(messages, 1) * 1e6)


def run_config(
    args: argparse.Namespace, pg: PostgresServer, n_nodes: int, run: int, workdir: Path
) -> dict[str, Any]:
    """One configuration: ``n_nodes`` nodes behind HAProxy on a new database."""
    tag = f"{run % 100:02d}{n_nodes}"
    name = pg.create_database(f"eai_nodes_{run}_{n_nodes}")
    database = pg.url(name)
    pg_pid = postmaster_pid(pg.datadir)
    load_before = [round(x, 2) for x in os.getloadavg()]
    sink = Peer(counting=True)
    nodes: list[EngineProcess] = []
    proxy: subprocess.Popen[bytes] | None = None
    proxy_log = None
    try:
        for i in range(n_nodes):
            home = workdir / f"run{run}-{n_nodes}n-node{i}"
            home.mkdir()
            if nodes:  # the journal is encrypted once, for every node: one key
                (home / "var").mkdir(mode=0o700)
                shutil.copy2(nodes[0].routes.parent / "var" / KEY_FILE, home / "var" / KEY_FILE)
            nodes.append(
                EngineProcess(
                    home,
                    sink.port,
                    args.dest_connections,
                    database=database,
                    routes_edit=_many_per_peer,
                )
            )
        front = _free_port()
        cfg = workdir / f"run{run}-{n_nodes}n-haproxy.cfg"
        cfg.write_text(haproxy_config(front, [n.port for n in nodes]))
        proxy, proxy_log = start_haproxy(cfg, workdir / f"run{run}-{n_nodes}n-haproxy.log")
        if not wait_port(front, 10, lambda: proxy is not None and proxy.poll() is None):
            raise RuntimeError(f"HAProxy did not listen; see {workdir} (--keep keeps it)")
        time.sleep(0.5)  # two health checks (rise 2, every 200 ms): every node is up
        # idle: what the nodes and PostgreSQL spend with no traffic (heartbeats, polls)
        idle0 = [n.cpu() for n in nodes], process_tree_cpu(pg_pid), time.monotonic()
        time.sleep(args.idle_seconds)
        idle_s = time.monotonic() - idle0[2]
        idle_nodes = sum(n.cpu() - c for n, c in zip(nodes, idle0[0], strict=True)) / idle_s
        idle_pg = (process_tree_cpu(pg_pid) - idle0[1]) / idle_s

        warm = run_senders("warm-up", front, args.senders, 1.0, 2000, "W" + tag)
        single = run_senders("1 sender", front, 1, args.single_seconds, 100_000, "S" + tag)
        before = _settle(sink, warm.messages + single.messages, 60.0)
        node0 = [n.cpu() for n in nodes]
        pg0 = process_tree_cpu(pg_pid)
        proxy0 = cpu_seconds(Path(f"/proc/{proxy.pid}/stat"))
        multi = run_senders(
            "senders",
            front,
            args.senders,
            args.seconds,
            args.max_messages,
            "M" + tag,
            args.rate,
        )
        deadline = time.monotonic() + args.drain_timeout
        while sink.received < before + multi.messages and time.monotonic() < deadline:
            time.sleep(0.01)
        drained = time.monotonic()
        node_cpu = [n.cpu() - c for n, c in zip(nodes, node0, strict=True)]
        pg_cpu = process_tree_cpu(pg_pid) - pg0
        proxy_cpu = cpu_seconds(Path(f"/proc/{proxy.pid}/stat")) - proxy0
        delivered = sink.received - before
        e2e = drained - multi.started
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait(10)
        if proxy_log is not None:
            proxy_log.close()
        codes = [n.stop() for n in nodes]
        sink.stop()
    rows = journal_rows(database, warm.messages + single.messages + multi.messages)
    pg.drop_database(name)

    m = multi.messages
    engines_us = _us(sum(node_cpu), m)
    pg_us = _us(pg_cpu, m)
    return {
        "nodes": n_nodes,
        "run": run,
        "loadavg_before": load_before,
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "multi": multi.summary(),
        "single": single.summary(),
        "delivered": delivered,
        "all_delivered": delivered >= m,
        "e2e_seconds": round(e2e, 3),
        "delivered_msgs_per_s": round(delivered / e2e, 1) if e2e > 0 else 0.0,
        "cpu_us_per_msg": {
            **{f"node {chr(ord('a') + i)}": _us(c, m) for i, c in enumerate(node_cpu)},
            "engines": engines_us,
            "postgresql": pg_us,
            "haproxy": _us(proxy_cpu, m),
            "engines + postgresql": engines_us + pg_us,
        },
        "msgs_per_s_per_core": round(1e6 / (engines_us + pg_us)) if engines_us + pg_us else 0,
        "idle_cpu_ms_per_s": {
            "engines": round(idle_nodes * 1e3, 1),
            "postgresql": round(idle_pg * 1e3, 1),
        },
        "rows_per_message": rows,
        "engine_exit_codes": codes,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {
        "when": datetime.now().isoformat(timespec="seconds"),
        "machine": _machine(),
        "settings": {
            k: getattr(args, k)
            for k in (
                "nodes",
                "rounds",
                "seconds",
                "single_seconds",
                "idle_seconds",
                "senders",
                "dest_connections",
                "rate",
            )
        },
        "runs": [],
    }
    workdir = Path(tempfile.mkdtemp(prefix="eai-nodes-", dir=args.tmp_dir))
    pg = start_postgres()
    try:
        for r in range(args.rounds):
            for n in args.nodes:
                result = run_config(args, pg, n, r, workdir)
                report["runs"].append(result)
                print(_line(result), flush=True)
    finally:
        pg.stop()
        if args.keep:
            print(f"data dirs and logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return report


def _line(r: dict[str, Any]) -> str:
    c = r["cpu_us_per_msg"]
    return (
        f"{r['nodes']} node(s), run {r['run']}: {r['multi']['msgs_per_s']:.0f} msgs/s "
        f"(p50 {r['multi']['p50_ms']:.1f} ms, p99 {r['multi']['p99_ms']:.1f} ms), "
        f"e2e {r['delivered_msgs_per_s']:.0f} msgs/s, CPU us/msg engines {c['engines']} + "
        f"PostgreSQL {c['postgresql']}, load {r['loadavg_before'][0]}"
    )


def print_table(report: dict[str, Any]) -> None:
    runs = report["runs"]
    m = report["machine"]
    print(f"\n1 vs 2 nodes on PostgreSQL, {m['nproc']} CPU, {report['settings']}")
    header = [f"{r['nodes']}n #{r['run']}" for r in runs]
    rows: list[tuple[str, list[str]]] = [
        ("load average before", [str(r["loadavg_before"][0]) for r in runs]),
        ("durable ACK msgs/s", [f"{r['multi']['msgs_per_s']:.0f}" for r in runs]),
        ("  ACK p50 ms", [f"{r['multi']['p50_ms']:.2f}" for r in runs]),
        ("  ACK p99 ms", [f"{r['multi']['p99_ms']:.2f}" for r in runs]),
        ("  messages / errors", [f"{r['multi']['messages']}/{r['multi']['errors']}" for r in runs]),
        ("1 sender ACK p50 ms", [f"{r['single']['p50_ms']:.2f}" for r in runs]),
        ("end-to-end msgs/s", [f"{r['delivered_msgs_per_s']:.0f}" for r in runs]),
    ]
    keys = sorted({k for r in runs for k in r["cpu_us_per_msg"]}, key=_cpu_order)
    for k in keys:
        rows.append((f"CPU us/msg {k}", [str(r["cpu_us_per_msg"].get(k, "")) for r in runs]))
    rows.append(("msgs/s per core (projected)", [str(r["msgs_per_s_per_core"]) for r in runs]))
    for k in ("engines", "postgresql"):
        rows.append((f"idle CPU ms/s {k}", [str(r["idle_cpu_ms_per_s"][k]) for r in runs]))
    for kind in ("count", "written"):
        rows.append(
            (
                f"journal rows/msg ({kind})",
                [str(r["rows_per_message"].get(kind, {}).get("total", "")) for r in runs],
            )
        )
    rows.append(
        (
            "transactions / message",
            [str(r["rows_per_message"].get("written", {}).get(COMMITS, "")) for r in runs],
        )
    )
    w0 = max(len(label) for label, _ in rows)
    widths = [max(len(h), *(len(v[i]) for _, v in rows)) for i, h in enumerate(header)]
    print("  ".join([" " * w0, *(h.rjust(w) for h, w in zip(header, widths, strict=True))]))
    for label, values in rows:
        cells = (v.rjust(w) for v, w in zip(values, widths, strict=True))
        print("  ".join([label.ljust(w0), *cells]))
    for kind, per in runs[-1]["rows_per_message"].items():
        detail = ", ".join(f"{t} {n}" for t, n in per.items() if t != "total")
        print(f"journal rows per message ({kind}, last run): {detail}")
    print("\nmedians per configuration:")
    for n in sorted({r["nodes"] for r in runs}):
        mine = [r for r in runs if r["nodes"] == n]
        print(
            f"  {n} node(s), {len(mine)} runs: "
            f"{statistics.median(r['multi']['msgs_per_s'] for r in mine):.0f} msgs/s, "
            f"e2e {statistics.median(r['delivered_msgs_per_s'] for r in mine):.0f} msgs/s, "
            f"CPU us/msg engines "
            f"{statistics.median(r['cpu_us_per_msg']['engines'] for r in mine):.0f} + "
            f"PostgreSQL {statistics.median(r['cpu_us_per_msg']['postgresql'] for r in mine):.0f}"
        )


def _cpu_order(key: str) -> tuple[int, str]:
    after = ("engines", "postgresql", "haproxy", "engines + postgresql")
    return (after.index(key) + 1 if key in after else 0, key)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument(
        "--nodes",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 2],
        help="the configurations, run in this order in each round (default 1,2)",
    )
    p.add_argument("--rounds", type=int, default=2, help="times each configuration runs")
    p.add_argument("--seconds", type=float, default=10.0, help="length of the main phase")
    p.add_argument(
        "--idle-seconds", type=float, default=3.0, help="CPU measured idle, before any traffic"
    )
    p.add_argument("--single-seconds", type=float, default=3.0, help="the one-sender phase")
    p.add_argument("--senders", type=int, default=8, help="sender connections through HAProxy")
    p.add_argument("--rate", type=float, default=0.0, help="msgs/s offered (0: closed loop)")
    p.add_argument("--max-messages", type=int, default=400_000, help="cap on the main phase")
    p.add_argument(
        "--dest-connections", type=int, default=2, help="connections of each node to the sink"
    )
    p.add_argument("--drain-timeout", type=float, default=120.0, help="max wait for the sink")
    p.add_argument("--tmp-dir", default=None, help="where the nodes' data dirs are made")
    p.add_argument("--keep", action="store_true", help="keep the data dirs and logs")
    p.add_argument("--out", default=None, help="JSON result file (default: bench/results/)")
    args = p.parse_args(argv)
    if args.senders < 1 or args.seconds <= 0 or not args.nodes or min(args.nodes) < 1:
        p.error("--senders >= 1, --seconds > 0, --nodes >= 1")

    report = run(args)
    print_table(report)
    stamp = f"{datetime.now():%Y%m%d-%H%M%S}"
    out = Path(args.out) if args.out else RESULTS / f"nodes_postgres-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nJSON: {out}")
    ok = all(r["multi"]["errors"] == 0 and r["all_delivered"] for r in report["runs"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
