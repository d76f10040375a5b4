"""MLLP ingest benchmark: durable-ACK throughput and latency of ``eai run`` against a bare server.

Run by hand (or ``make bench``)::

    .venv/bin/python bench/mllp_ingest.py [--seconds 10] [--senders 8]

Every party is its own process, all on 127.0.0.1:

- the engine: ``eai run -c <tmp>/routes.yaml`` (SQLite in a tmp dir, WAL,
  ``synchronous=FULL`` as shipped, log level INFO as shipped), one MLLP
  listener routed to one MLLP destination;
- the sink (the destination): :class:`standins.mllp.MllpPeer`, answering AA
  and counting the distinct MSH-10 it received;
- the bare server: the same ``MllpPeer`` counting nothing (ACK without storing);
- the senders: one asyncio process with ``--senders`` connections, each
  waiting for the ACK before sending its next message (as real interfaces do).
  Messages are the PAM FR A01 fixture (``standins.hl7.adt_from``) with a
  unique MSH-10, spread over a handful of patients.

Phases of one invocation: the bare server (``--senders`` connections), then
the engine: warm-up, one sender (``--single-seconds``), ``--senders`` senders
(``--seconds``), and the wait until the sink holds every message (bounded by
``--drain-timeout``). Each phase also stops at ``--max-messages``.

Prints a table and writes JSON to ``bench/results/`` (gitignored); exits 1 when
an ACK was not AA or the sink did not get every message. Also reported: the
load average and a 4 KiB fdatasync probe of the disk (the figures depend on
both), and the engine's CPU time per message (main thread vs the others).

``--database postgresql`` journals to a PostgreSQL server that the bench starts
in a tmp dir (``tests/_postgres.py``: Debian's ``initdb``/``pg_ctl``, 127.0.0.1, fsync
and synchronous_commit on) and stops at the end; the server's CPU (all its
processes) per message is reported beside the engine's. Both databases: the journal
rows per message (``count(*)`` per table; on PostgreSQL also the rows written).

``--rate N`` offers N messages/s in the main phase instead of sending as fast as the
ACKs come: the engine's batch sizes, hence its CPU per message, then depend on the rate
and not on how busy the machine is (compare builds this way on a shared machine).

``--profile FILE`` runs ``py-spy record`` on the engine during the main phase
(``.svg`` flame graph, ``.txt`` collapsed stacks, ``.json`` speedscope;
``--profile-gil`` keeps only samples holding the GIL). ``--engine-cmd`` runs
another build in place of ``eai`` (e.g. to compare before/after a change).
See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import multiprocessing.connection
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests._postgres import PostgresServer

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
A01_FIXTURE = REPO.parent / "shared" / "fixtures" / "hl7v2" / "pamfr_a01_admission.er7"
SB, EB = b"\x0b", b"\x1c\r"
PLACEHOLDER = "BENCHCTRLID000000000"  # 20 characters, the v2.5 MSH-10 maximum
PATIENTS = ("000003", "000104", "000205", "000306", "000407")

TARGETS = {
    "durable_ack_msgs_per_s": 3000.0,
    "ratio_to_bare": 0.2,
    "p99_ms": 20.0,
    "delivered_msgs_per_s": 2000.0,
}


def _repo_on_path() -> None:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


_repo_on_path()
from bench._measure import cpu_seconds, journal_rows, postmaster_pid, process_tree_cpu  # noqa: E402

# -- the MLLP peers (sink and bare server), each in its own process ------------------


def _peer_main(
    ready: multiprocessing.connection.Connection, count: Any, stop: Any, counting: bool
) -> None:
    """Child process: an :class:`MllpPeer`; ``count`` = distinct MSH-10 received (sink)."""
    _repo_on_path()
    from standins.mllp import MllpPeer, ack_for, msh10

    seen: set[str] = set()

    def answer(payload: bytes) -> bytes:
        seen.add(msh10(payload))
        return ack_for(payload, "AA")

    peer = MllpPeer(answer if counting else None, record=False).start()
    ready.send(peer.port)
    try:
        while not stop.is_set():
            count.value = len(seen)
            stop.wait(0.005)
    finally:
        count.value = len(seen)
        peer.stop()


class Peer:
    """A peer process; ``received`` is the number of distinct messages (sink only)."""

    def __init__(self, counting: bool) -> None:
        ctx = mp.get_context("spawn")
        self._count = ctx.Value("q", 0, lock=False)
        self._stop = ctx.Event()
        parent, child = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(
            target=_peer_main, args=(child, self._count, self._stop, counting), daemon=True
        )
        self._proc.start()
        if not parent.poll(30):
            raise RuntimeError("MLLP peer did not start")
        self.port: int = parent.recv()
        self.pid = self._proc.pid

    @property
    def received(self) -> int:
        return int(self._count.value)

    def stop(self) -> None:
        self._stop.set()
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()


# -- the senders ------------------------------------------------------------------------


@dataclass
class PhaseResult:
    name: str
    senders: int
    messages: int
    errors: int
    seconds: float
    started: float  # time.monotonic() in the sender process (system-wide clock on Linux)
    ended: float
    latencies_ms: list[float] = field(repr=False)

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> dict[str, Any]:
        return {
            "senders": self.senders,
            "messages": self.messages,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "msgs_per_s": round(self.rate, 1),
            "p50_ms": round(self.pct(0.50), 3),
            "p90_ms": round(self.pct(0.90), 3),
            "p99_ms": round(self.pct(0.99), 3),
            "max_ms": round(max(self.latencies_ms, default=float("nan")), 3),
        }


async def _send_loop(
    port: int,
    senders: int,
    seconds: float,
    max_messages: int,
    tag: str,
    templates: list[bytes],
    rate: float = 0.0,
) -> tuple[list[float], int, int, float, float]:
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(senders)]
    placeholder = PLACEHOLDER.encode()
    latencies: list[float] = []
    errors = 0
    sent = 0
    start = time.monotonic()
    deadline = start + seconds

    # --rate: each sender sends every senders/rate s (spread over the interval), or at
    # once when it is late; 0: as soon as the previous ACK came (closed loop).
    interval = senders / rate if rate > 0 else 0.0

    async def one(number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal errors, sent
        seq = 0
        clock = time.perf_counter
        next_at = start + interval * number / senders
        while sent < max_messages and time.monotonic() < deadline:
            if interval:
                wait = next_at - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                next_at += interval
            seq += 1
            cid = f"{tag}{number:02d}{seq:08d}".encode()
            template = templates[(number + seq) % len(templates)]
            payload = template.replace(placeholder, cid, 1)
            sent += 1
            t0 = clock()
            writer.write(SB + payload + EB)
            ack = await reader.readuntil(EB)
            latencies.append((clock() - t0) * 1000.0)
            if b"MSA|AA|" + cid not in ack:
                errors += 1

    await asyncio.gather(*(one(i, r, w) for i, (r, w) in enumerate(conns)))
    end = time.monotonic()
    for _, w in conns:
        w.close()
    return latencies, errors, len(latencies), start, end


def _sender_main(
    out: multiprocessing.connection.Connection,
    port: int,
    senders: int,
    seconds: float,
    max_messages: int,
    tag: str,
    rate: float = 0.0,
) -> None:
    _repo_on_path()
    from standins.hl7 import adt_from

    a01 = A01_FIXTURE.read_bytes()
    templates = [adt_from(a01, PLACEHOLDER, patient=p) for p in PATIENTS]
    latencies, errors, n, start, end = asyncio.run(
        _send_loop(port, senders, seconds, max_messages, tag, templates, rate)
    )
    out.send((latencies, errors, n, start, end))


def run_senders(
    name: str,
    port: int,
    senders: int,
    seconds: float,
    max_messages: int,
    tag: str,
    rate: float = 0.0,
) -> PhaseResult:
    """Runs the senders in their own process; returns when they are done (``rate``:
    messages/s offered by all of them, 0 = each sends when its previous ACK came)."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(
        target=_sender_main,
        args=(child, port, senders, seconds, max_messages, tag, rate),
        daemon=True,
    )
    proc.start()
    deadline = time.monotonic() + seconds + 120
    while not parent.poll(0.5):
        if not proc.is_alive() or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{name}: the senders failed (exit code {proc.exitcode})")
    latencies, errors, n, start, end = parent.recv()
    proc.join(10)
    return PhaseResult(name, senders, n, errors, end - start, start, end, latencies)


# -- the engine -------------------------------------------------------------------------

ROUTES = """\
engine:
  data_dir: {data_dir}
  database: sqlite:///{data_dir}/eai.db
listeners:
  - name: bench-adt
    type: mllp
    bind: 127.0.0.1:{port}
    allowed_senders: [CHU-X]
    test_feed: true  # the national fixture carries the INS test OID and a test identity
destinations:
  - name: sink
    type: mllp
    host: 127.0.0.1
    port: {sink_port}
    ack_timeout: 30s
    connections: {connections}
    retry: {{initial: 0.1s, max: 2s}}
routes:
  - name: adt-to-sink
    from: [bench-adt]
    when:
      message_type: [ADT^A01]
    to: [sink]
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the engine exited with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the engine did not open its listener")


def _routes_edit(
    plan_processes: int, own_process: bool, unrouted: bool, engine_set: list[str]
) -> Callable[[str], str] | None:
    """Sets ``engine.plan_processes``, the ``engine:`` keys of ``engine_set``
    (``key=value``) and the listener's ``own_process`` in the routes.yaml text, and with
    ``unrouted`` makes the route match nothing (None: leaves it)."""
    if not plan_processes and not own_process and not unrouted and not engine_set:
        return None

    def edit(text: str) -> str:
        for setting in engine_set:
            key, _, value = setting.partition("=")
            text = text.replace("engine:\n", f"engine:\n  {key}: {value}\n", 1)
        if plan_processes:
            text = text.replace("engine:\n", f"engine:\n  plan_processes: {plan_processes}\n", 1)
        if unrouted:
            text = text.replace("[ADT^A01]", "[ADT^A99]")
        if own_process:
            text = text.replace("    type: mllp\n", "    type: mllp\n    own_process: true\n", 1)
        return text

    return edit


class EngineProcess:
    def __init__(
        self,
        workdir: Path,
        sink_port: int,
        connections: int,
        command: list[str] | None = None,
        database: str | None = None,
        routes_edit: Callable[[str], str] | None = None,
    ) -> None:
        """``database``: the journal's URL (default SQLite in the data dir);
        ``routes_edit``: rewrites the routes.yaml text before the engine reads it."""
        self.port = _free_port()
        data_dir = workdir / "var"
        self.routes = workdir / "routes.yaml"
        routes = ROUTES.format(
            data_dir=data_dir, port=self.port, sink_port=sink_port, connections=connections
        )
        if database:
            routes = routes.replace(f"sqlite:///{data_dir}/eai.db", database, 1)
        self.routes.write_text(routes_edit(routes) if routes_edit else routes)
        self.log_path = workdir / "engine.log"
        eai = Path(sys.executable).with_name("eai")
        cmd = command or ([str(eai)] if eai.exists() else [sys.executable, str(REPO / "cli.py")])
        self._log = self.log_path.open("wb")
        env = {k: v for k, v in os.environ.items() if k != "EAI_KEY"}
        self.proc = subprocess.Popen(
            [*cmd, "run", "-c", str(self.routes)],
            cwd=workdir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            _wait_port(self.port, self.proc)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}; see {self.log_path} (--keep keeps it)") from None

    def cpu(self) -> float:
        """The engine's CPU seconds, its planning processes' (``--plan-processes``) with it."""
        return process_tree_cpu(self.proc.pid)

    def thread_cpu(self) -> dict[str, float]:
        """CPU seconds of the main thread (the event loop) and of all the others."""
        main, others = "main (event loop)", "other threads (writer, executor)"
        out = {main: 0.0, others: 0.0}
        for task in Path(f"/proc/{self.proc.pid}/task").glob("*"):
            out[main if task.name == str(self.proc.pid) else others] += cpu_seconds(task / "stat")
        return out

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def _start_profiler(
    pid: int, out: Path, seconds: float, gil: bool, native: bool
) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("--profile: py-spy not found (.venv/bin/pip install py-spy)", file=sys.stderr)
        return None
    return subprocess.Popen(
        [
            spy,
            "record",
            "--pid",
            str(pid),
            "--threads",
            "--subprocesses",
            "--duration",
            str(max(1, int(seconds))),
            "--rate",
            "250",
            "--format",
            {".json": "speedscope", ".txt": "raw"}.get(out.suffix, "flamegraph"),
            "-o",
            str(out),
            *(["--gil"] if gil else []),
            *(["--native"] if native else []),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


# -- the run ------------------------------------------------------------------------------


def _machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _fsync_probe(directory: Path, n: int = 100) -> dict[str, float]:
    """Latency of a 4 KiB write + fdatasync where the journal lives (the disk's share)."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    times = []
    try:
        for _ in range(n):
            os.write(fd, b"x" * 4096)
            t0 = time.perf_counter()
            os.fdatasync(fd)
            times.append((time.perf_counter() - t0) * 1000.0)
    finally:
        os.close(fd)
        path.unlink()
    times.sort()
    return {"p50_ms": round(times[n // 2], 3), "p90_ms": round(times[int(n * 0.9)], 3)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    tag = f"{os.getpid() % 1000:03d}"
    report: dict[str, Any] = {
        "when": datetime.now().isoformat(timespec="seconds"),
        "machine": _machine(),
        "settings": {
            "seconds": args.seconds,
            "single_seconds": args.single_seconds,
            "senders": args.senders,
            "max_messages": args.max_messages,
            "dest_connections": args.dest_connections,
            "engine_cmd": args.engine_cmd or "eai",
            "rate": args.rate,
            "synchronous": "FULL" if args.database == "sqlite" else "on",
            "database": args.database,
            "plan_processes": args.plan_processes,
            "own_process": args.own_process,
            "unrouted": args.unrouted,
            "engine_set": args.engine_set,
        },
        "targets": TARGETS,
    }

    workdir = Path(tempfile.mkdtemp(prefix="eai-bench-", dir=args.tmp_dir))
    pg = start_postgres() if args.database == "postgresql" else None
    try:
        _run_phases(args, tag, workdir, report, pg)
    finally:
        if pg is not None:
            pg.stop()
        if args.keep:
            report["workdir"] = str(workdir)
            print(f"engine data dir and log kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return report


def start_postgres() -> PostgresServer:
    """A PostgreSQL server of the bench's own (``tests/_postgres.py``), started."""
    from tests._postgres import PostgresServer

    return PostgresServer().start()


def _run_phases(
    args: argparse.Namespace,
    tag: str,
    workdir: Path,
    report: dict[str, Any],
    pg: PostgresServer | None = None,
) -> None:
    report["machine"]["loadavg_before"] = [round(x, 2) for x in os.getloadavg()]
    report["machine"]["fsync_4k"] = _fsync_probe(workdir)

    # 1. The bare server: the ceiling of this client on this machine.
    bare = Peer(counting=False)
    try:
        bare_multi = run_senders(
            "bare", bare.port, args.senders, args.seconds, args.max_messages, "X" + tag
        )
        bare_single = run_senders(
            "bare-1", bare.port, 1, args.single_seconds, args.max_messages, "Y" + tag
        )
    finally:
        bare.stop()

    # 2. The engine, delivering to the sink.
    sink = Peer(counting=True)
    engine: EngineProcess | None = None
    database = pg.url(pg.create_database("eai_bench")) if pg else None
    pg_pid = postmaster_pid(pg.datadir) if pg else 0
    try:
        engine = EngineProcess(
            workdir,
            sink.port,
            args.dest_connections,
            shlex.split(args.engine_cmd or ""),
            database=database,
            routes_edit=_routes_edit(
                args.plan_processes, args.own_process, args.unrouted, args.engine_set
            ),
        )
        # Warm-up (imports, first connections, SQLite caches); not reported.
        warm = run_senders("warm-up", engine.port, args.senders, 1.0, 2000, "W" + tag)
        single = run_senders(
            "eai-1", engine.port, 1, args.single_seconds, args.max_messages, "S" + tag
        )
        before = _settle(sink, warm.messages + single.messages, 60.0)
        profiler = None
        if args.profile:
            profiler = _start_profiler(
                engine.proc.pid,
                Path(args.profile),
                args.seconds,
                args.profile_gil,
                args.profile_native,
            )
            time.sleep(0.5)  # py-spy attaches
        cpu0 = engine.cpu()
        threads0 = engine.thread_cpu()
        pg0 = process_tree_cpu(pg_pid) if pg else 0.0
        multi = run_senders(
            "eai", engine.port, args.senders, args.seconds, args.max_messages, "M" + tag, args.rate
        )
        cpu_ingest = engine.cpu() - cpu0
        sink_target = before + multi.messages
        delivered_at_end_of_sends = sink.received - before
        deadline = time.monotonic() + args.drain_timeout
        while sink.received < sink_target and time.monotonic() < deadline:
            time.sleep(0.01)
        drained = time.monotonic()
        cpu_total = engine.cpu() - cpu0
        pg_cpu = process_tree_cpu(pg_pid) - pg0 if pg else 0.0
        threads = {
            name: round((t - threads0.get(name, 0.0)) / max(multi.messages, 1) * 1e6)
            for name, t in engine.thread_cpu().items()
        }
        children = cpu_total * 1e6 / max(multi.messages, 1) - sum(threads.values())
        if children >= 1:
            threads["child processes (listener, planning)"] = round(children)
        delivered = sink.received - before
        if profiler is not None:
            profiler.wait(args.seconds + 60)
        e2e_seconds = drained - multi.started
        code = engine.stop()
        engine = None
        journaled = warm.messages + single.messages + multi.messages
        rows = journal_rows(database or f"sqlite:///{workdir}/var/eai.db", journaled)
    finally:
        if engine is not None:
            engine.stop()
        sink.stop()

    report["bare"] = {"multi": bare_multi.summary(), "single": bare_single.summary()}
    report["eai"] = {
        "multi": multi.summary(),
        "single": single.summary(),
        "delivered": delivered,
        "delivered_during_sends": delivered_at_end_of_sends,
        "all_delivered": delivered >= multi.messages,
        "e2e_seconds": round(e2e_seconds, 3),
        "delivered_msgs_per_s": round(delivered / e2e_seconds, 1) if e2e_seconds > 0 else 0.0,
        "engine_cpu_s_during_sends": round(cpu_ingest, 2),
        "engine_cpu_s_until_delivered": round(cpu_total, 2),
        "engine_cpu_us_per_msg": round(cpu_total / max(multi.messages, 1) * 1e6),
        "engine_cpu_us_per_msg_by_thread": dict(sorted(threads.items(), key=lambda kv: -kv[1])),
        "engine_exit_code": code,
        "rows_per_message": rows,
    }
    if pg:
        report["eai"]["postgres_cpu_us_per_msg"] = round(pg_cpu / max(multi.messages, 1) * 1e6)
    report["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    report["ratio_to_bare"] = round(multi.rate / bare_multi.rate, 3) if bare_multi.rate else 0.0


def _settle(sink: Peer, target: int | None, timeout: float) -> int:
    """Waits until the sink stops receiving (or reaches ``target``); returns its count."""
    deadline = time.monotonic() + timeout
    last, still = -1, 0
    while time.monotonic() < deadline:
        n = sink.received
        if target is not None and n >= target:
            return n
        still = still + 1 if n == last else 0
        if still >= 50:  # unchanged for 0.5 s: the backlog is delivered
            return n
        last = n
        time.sleep(0.01)
    return sink.received


def _verdict(value: float, target: float, *, at_most: bool = False) -> str:
    ok = value <= target if at_most else value >= target
    return "ok" if ok else "MISSED"


def print_table(r: dict[str, Any]) -> None:
    m = r["machine"]
    b, e = r["bare"], r["eai"]
    print(f"\nMLLP ingest, {m['nproc']} CPU, Python {m['python']}, {r['settings']}")
    print(
        f"load average before/after: {m['loadavg_before'][0]} / {m['loadavg_after'][0]}, "
        f"fsync 4 KiB p50/p90: {m['fsync_4k']['p50_ms']} / {m['fsync_4k']['p90_ms']} ms"
    )
    rows = [
        ("", "bare", "eai", "eai/bare"),
        (
            f"{b['multi']['senders']} senders: msgs/s",
            f"{b['multi']['msgs_per_s']:.0f}",
            f"{e['multi']['msgs_per_s']:.0f}",
            f"{r['ratio_to_bare']:.2f}",
        ),
        ("  ACK p50 ms", f"{b['multi']['p50_ms']:.2f}", f"{e['multi']['p50_ms']:.2f}", ""),
        ("  ACK p99 ms", f"{b['multi']['p99_ms']:.2f}", f"{e['multi']['p99_ms']:.2f}", ""),
        ("  messages", str(b["multi"]["messages"]), str(e["multi"]["messages"]), ""),
        ("  errors", str(b["multi"]["errors"]), str(e["multi"]["errors"]), ""),
        (
            "1 sender: msgs/s",
            f"{b['single']['msgs_per_s']:.0f}",
            f"{e['single']['msgs_per_s']:.0f}",
            "",
        ),
        ("  ACK p50 ms", f"{b['single']['p50_ms']:.2f}", f"{e['single']['p50_ms']:.2f}", ""),
        ("  ACK p99 ms", f"{b['single']['p99_ms']:.2f}", f"{e['single']['p99_ms']:.2f}", ""),
        ("end-to-end delivered msgs/s", "", f"{e['delivered_msgs_per_s']:.0f}", ""),
        ("  delivered / sent", "", f"{e['delivered']} / {e['multi']['messages']}", ""),
        ("  delivered while sending", "", str(e["delivered_during_sends"]), ""),
        ("  engine CPU us / message", "", str(e["engine_cpu_us_per_msg"]), ""),
        *(
            (f"    thread {name}", "", str(us), "")
            for name, us in e["engine_cpu_us_per_msg_by_thread"].items()
            if us > 0
        ),
        (
            "  engine CPU s (sends / total)",
            "",
            (f"{e['engine_cpu_s_during_sends']} / {e['engine_cpu_s_until_delivered']}"),
            "",
        ),
        *(
            [("  PostgreSQL CPU us / message", "", str(e["postgres_cpu_us_per_msg"]), "")]
            if "postgres_cpu_us_per_msg" in e
            else []
        ),
        *(
            (f"journal rows / message ({kind})", "", str(rows["total"]), "")
            for kind, rows in e.get("rows_per_message", {}).items()
        ),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    for kind, rows in e.get("rows_per_message", {}).items():
        detail = ", ".join(f"{t} {n}" for t, n in rows.items() if t != "total")
        print(f"journal rows per message ({kind}): {detail}")
    t = r["targets"]
    print("\ntargets:")
    print(
        f"  durable ACK >= {t['durable_ack_msgs_per_s']:.0f} msgs/s: "
        f"{e['multi']['msgs_per_s']:.0f} "
        f"{_verdict(e['multi']['msgs_per_s'], t['durable_ack_msgs_per_s'])}"
    )
    print(
        f"  ratio to bare >= {t['ratio_to_bare']}: {r['ratio_to_bare']:.2f} "
        f"{_verdict(r['ratio_to_bare'], t['ratio_to_bare'])}"
    )
    print(
        f"  ACK p99 <= {t['p99_ms']:.0f} ms: {e['multi']['p99_ms']:.2f} "
        f"{_verdict(e['multi']['p99_ms'], t['p99_ms'], at_most=True)}"
    )
    print(
        f"  end-to-end >= {t['delivered_msgs_per_s']:.0f} msgs/s: "
        f"{e['delivered_msgs_per_s']:.0f} "
        f"{_verdict(e['delivered_msgs_per_s'], t['delivered_msgs_per_s'])}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--seconds", type=float, default=10.0, help="length of the main phases")
    p.add_argument("--senders", type=int, default=8, help="concurrent sender connections")
    p.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="messages/s offered in the main eai phase (0: each sender as fast as its ACKs "
        "come); a fixed rate makes the engine's batches, so its CPU per message, comparable "
        "between builds on a busy machine",
    )
    p.add_argument(
        "--single-seconds", type=float, default=3.0, help="length of the one-sender phases"
    )
    p.add_argument(
        "--max-messages", type=int, default=400_000, help="cap on the messages of each phase"
    )
    p.add_argument(
        "--dest-connections", type=int, default=2, help="connections of the engine to the sink"
    )
    p.add_argument(
        "--drain-timeout", type=float, default=120.0, help="max wait for the sink to have all"
    )
    p.add_argument(
        "--database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="the journal: SQLite in the tmp dir, or a PostgreSQL server the bench starts",
    )
    p.add_argument("--tmp-dir", default=None, help="where the engine's data dir is made")
    p.add_argument("--keep", action="store_true", help="keep the engine's data dir and log")
    p.add_argument(
        "--profile",
        metavar="FILE",
        help="py-spy record the engine in the main phase (.svg; .txt: collapsed stacks)",
    )
    p.add_argument(
        "--profile-gil", action="store_true", help="profile only the thread holding the GIL"
    )
    p.add_argument(
        "--profile-native", action="store_true", help="include C frames (slows the engine)"
    )
    p.add_argument(
        "--engine-cmd",
        default=None,
        help="command that stands for `eai` (to compare builds), with absolute paths (it "
        "runs in the tmp dir), e.g. '/src/old/.venv/bin/eai'; default: the venv's eai",
    )
    p.add_argument(
        "--plan-processes",
        type=int,
        default=0,
        help="engine.plan_processes: planning in that many worker processes (0: a thread)",
    )
    p.add_argument(
        "--own-process",
        action="store_true",
        help="the MLLP listener's own_process: reading, journal and ACK in a process of its own",
    )
    p.add_argument(
        "--engine-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an engine: setting of the bench's routes.yaml (repeatable), e.g. batch_wait=10ms",
    )
    p.add_argument(
        "--unrouted",
        action="store_true",
        help="no route matches (the pipeline only marks each message unrouted): the ingest "
        "measured with little else running; nothing reaches the sink (--drain-timeout 0)",
    )
    p.add_argument("--out", default=None, help="JSON result file (default: bench/results/)")
    args = p.parse_args(argv)
    if args.senders < 1 or args.seconds <= 0:
        p.error("--senders >= 1 and --seconds > 0")

    report = run(args)
    print_table(report)
    out = (
        Path(args.out)
        if args.out
        else (RESULTS / f"mllp_ingest-{datetime.now():%Y%m%d-%H%M%S}.json")
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nJSON: {out}")
    delivered = report["eai"]["all_delivered"] or args.unrouted
    return 0 if report["eai"]["multi"]["errors"] == 0 and delivered else 1


if __name__ == "__main__":
    sys.exit(main())
