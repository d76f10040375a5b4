"""FHIR send benchmark: CR-BIO reports/s from ORU arrival to the FHIR server's transaction-response.

Run by hand::

    .venv/bin/python bench/fhir_send.py [--peer medplum|fast] [--reports 300]
        [--patients 16] [--senders 4] [--connections 4] [--cda FILE] [--profile OUT]

Every party is its own process, all on 127.0.0.1:

- the FHIR server (``--peer``): ``medplum``, Medplum's FHIR router over its in-memory
  repository, validating every resource (``tests/_fhir_peer/server.mjs``, Node; its
  npm packages installed by ``scripts/install-test-peers.sh``), or ``fast``, a stand-in
  that checks the request is a FHIR transaction Bundle and answers a
  transaction-response at once (``bench/fhir_fast_peer.py``): the engine's cost alone;
- the engine: ``eai run`` (SQLite in a tmp dir as shipped), one MLLP listener, one
  route ``map: cisis-oru-mdm`` to one ``type: fhir`` destination (``--connections``);
- the senders: ``--senders`` MLLP connections of this process, each waiting for its
  ACK before the next report. A report is the national CR-BIO ORU
  (``oru_r01_crbio_init.hl7``: 52 Observations, 4 Specimens, the DiagnosticReport,
  the DocumentReference with the 134 kB CDA, the Patient...; ``--cda``: another CDA in
  its ED OBX, e.g. the 2-result TSH report) with a unique MSH-10 and a local patient
  id (PID-3 PI) among ``--patients``: reports of one patient go in order, patients in
  parallel.

Measured: from the first report sent to the server's last transaction-response
(reports/s), the ACK rate, and where the time goes: the server's own time per
transaction (its log: arrival -> answer), the engine's CPU time per report (the
process, split into user and kernel time, and as reports per engine CPU-second: what
one core given to the engine alone would carry; per thread when ``py-spy`` is there
to name them: ``PY_SPY`` or on the
PATH), the CPU time of each engine stage in this process (``bench/fhir_stages.py``);
``--profile OUT``: py-spy's collapsed stacks of the engine during the run.
Writes JSON to ``bench/results/`` (gitignored); exits 1 when a report was not delivered.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
PEER = REPO / "tests" / "_fhir_peer"
FAST_PEER = REPO / "bench" / "fhir_fast_peer.py"
ORU = REPO.parent / "shared" / "fixtures" / "hl7v2" / "oru_r01_crbio_init.hl7"
TARGET = 100.0

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from bench._measure import process_tree_cpu  # noqa: E402


def _report(control_id: str, patient: int, cda: Path | None = None) -> bytes:
    """The national ORU with MSH-10 ``control_id`` and a local id before the INS in PID-3;
    ``cda``: that document in the ED OBX instead of the ORU's own."""
    template = _template(cda)
    return template.replace(b"{CID}", control_id.encode(), 1).replace(
        b"{PATIENT}", f"{patient:04d}".encode(), 1
    )


@functools.cache
def _template(cda: Path | None) -> bytes:
    """The report with placeholders for MSH-10 and the patient: built once, so that the
    senders' CPU (on the same 2 cores as the engine) is the framing, not the base64."""
    lines = ORU.read_bytes().splitlines()
    out = []
    for line in lines:
        fields = line.split(b"|")
        if fields[0] == b"MSH":
            fields[9] = b"{CID}"
        elif fields[0] == b"PID":
            fields[3] = b"BENCH{PATIENT}^^^LAB&1.2.250.1.999.9&ISO^PI~" + fields[3]
        elif fields[0] == b"OBX" and fields[2] == b"ED" and cda is not None:
            parts = fields[5].split(b"^")
            if parts[3:4] == [b"Base64"]:
                parts[4] = base64.b64encode(cda.read_bytes())
                fields[5] = b"^".join(parts)
        out.append(b"|".join(fields))
    return b"\r".join(out) + b"\r"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"eai run exited {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"eai run did not listen on {port}")


def _cpu_seconds(pid: int) -> float:
    return sum(_cpu_split(pid))


def _cpu_split(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of process ``pid`` (system: the kernel's share, e.g.
    SQLite's writes and fsyncs, the sockets)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def _thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds by native thread id."""
    out: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def _thread_names(pid: int) -> dict[int, str]:
    """Native thread id -> Python thread name, from ``py-spy dump`` ({} without py-spy):
    ``MainThread`` is the event loop (MLLP, delivery workers, httpx), ``asyncio_N`` the
    executor (the pipeline's plans: parse, mappings, seal), ``eai-writer`` SQLite."""
    spy = _py_spy()
    try:
        dump = subprocess.run(
            [spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    found = re.findall(r'Thread (\d+) \(\w+\): "([^"]+)"', dump)
    return {int(tid): re.sub(r"_\d+$", "", name) for tid, name in found}


def _by_name(
    before: dict[int, float], after: dict[int, float], names: dict[int, str], reports: int
) -> dict[str, float]:
    """CPU ms per report of each thread name over the run."""
    out: dict[str, float] = {}
    for tid, seconds in after.items():
        name = names.get(tid, "other")
        spent = (seconds - before.get(tid, 0.0)) / max(1, reports) * 1000
        out[name] = round(out.get(name, 0.0) + spent, 2)
    return out


def _py_spy() -> str:
    return os.environ.get("PY_SPY") or shutil.which("py-spy") or str(REPO / ".venv/bin/py-spy")


async def _sender(
    port: int, queue: asyncio.Queue[tuple[str, int]], acks: list[str], cda: Path | None
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while True:
            try:
                cid, patient = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            writer.write(b"\x0b" + _report(cid, patient, cda) + b"\x1c\r")
            await writer.drain()
            ack = await reader.readuntil(b"\x1c\r")
            if b"MSA|AA|" not in ack:
                raise SystemExit(f"{cid}: not AA: {ack[:200]!r}")
            acks.append(cid)
    finally:
        writer.close()


async def _send_all(
    port: int, reports: int, patients: int, senders: int, cda: Path | None
) -> list[str]:
    queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
    for i in range(reports):
        queue.put_nowait((f"B{i:06d}", i % patients))
    acks: list[str] = []
    await asyncio.gather(*(_sender(port, queue, acks, cda) for _ in range(senders)))
    return acks


def _profiler(out: str, pid: int) -> subprocess.Popen[bytes] | None:
    """py-spy recording the engine (all threads, collapsed stacks) into ``out``, or None."""
    if not out:
        return None
    command = [_py_spy(), "record", "-p", str(pid), "-r", "200", "-f", "raw", "-o", out]
    command.append("--threads")
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _peer_log(control_port: int) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{control_port}/_log", timeout=30) as answer:
        rows: list[dict[str, Any]] = json.loads(answer.read())
    return rows


def _stages(cda: Path | None) -> dict[str, float]:
    """CPU ms per report of each engine stage, in this process (``bench/fhir_stages.py``)."""
    sys.path.insert(0, str(REPO / "bench"))
    from fhir_stages import stages

    return {k: round(v, 2) for k, v in stages(_report("S0", 0, cda), rounds=5, n=5).items()}


def run(args: argparse.Namespace) -> dict[str, Any]:
    node = shutil.which("node") or "node"
    medplum = (PEER / "node_modules" / "@medplum" / "fhir-router").is_dir()
    if args.peer == "medplum" and (shutil.which("node") is None or not medplum):
        raise SystemExit("the FHIR peer needs node and scripts/install-test-peers.sh")
    work = Path(tempfile.mkdtemp(prefix="eai-fhir-bench-"))
    if args.peer == "fast":
        command, cwd = [sys.executable, str(FAST_PEER), "0"], REPO
    else:
        command, cwd = [node, "server.mjs", "0"], PEER
    peer = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    engine: subprocess.Popen[bytes] | None = None
    try:
        assert peer.stdout is not None
        fhir_port, control_port = (int(p) for p in peer.stdout.readline().split()[1:3])
        port = _free_port()
        config = {
            "engine": {
                "data_dir": str(work / "var"),
                "database": f"sqlite:///{work}/var/eai.db",
                "plan_processes": args.plan_processes,
                "batch_wait": args.batch_wait,
            },
            "listeners": [
                {
                    "name": "lab",
                    "type": "mllp",
                    "bind": f"127.0.0.1:{port}",
                    "test_feed": True,
                    "own_process": args.own_process,
                }
            ],
            "destinations": [
                {
                    "name": "scad",
                    "type": "fhir",
                    "base_url": f"http://127.0.0.1:{fhir_port}/fhir",
                    "connections": args.connections,
                    "retry": {"initial": "0.2s", "max": "1s"},
                }
            ],
            "routes": [{"name": "scad", "from": ["lab"], "to": ["scad"], "map": "cisis-oru-mdm"}],
        }
        routes = work / "routes.yaml"
        routes.write_text(json.dumps(config))
        env = {k: v for k, v in os.environ.items() if not k.startswith("EAI_")}
        engine = subprocess.Popen(
            [str(REPO / ".venv" / "bin" / "eai"), "run", "-c", str(routes)],
            cwd=work,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(work / "eai.log", "wb"),  # noqa: SIM115 - closed with the process
        )
        _wait_port(port, engine)
        asyncio.run(_send_all(port, 4, 4, 1, args.cda))  # warm-up: mapping compiled, pool open
        deadline = time.monotonic() + 60
        while len([r for r in _peer_log(control_port) if r.get("status") == 200]) < 4:
            if time.monotonic() > deadline:
                raise SystemExit(f"warm-up not delivered; see {work / 'eai.log'}")
            time.sleep(0.2)
        spy = _profiler(args.profile, engine.pid)
        cpu0 = _cpu_seconds(engine.pid)
        user0, system0 = _cpu_split(engine.pid)
        peer_cpu0 = _cpu_seconds(peer.pid)
        threads0 = _thread_cpu(engine.pid)
        tree0 = process_tree_cpu(engine.pid)
        own0 = time.process_time()
        started = time.time()
        acks = asyncio.run(_send_all(port, args.reports, args.patients, args.senders, args.cda))
        acked = time.time()
        deadline = time.monotonic() + args.drain_timeout
        while True:
            done = [
                r
                for r in _peer_log(control_port)
                if r["path"] == "/fhir" and r["id"].startswith("B") and r["status"] == 200
            ]
            if len({r["id"] for r in done}) >= args.reports or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        cpu = _cpu_seconds(engine.pid) - cpu0
        user1, system1 = _cpu_split(engine.pid)
        user, system = user1 - user0, system1 - system0
        peer_cpu = _cpu_seconds(peer.pid) - peer_cpu0
        threads = _thread_cpu(engine.pid)
        # the engine with its planning processes, less the engine itself
        planners = process_tree_cpu(engine.pid) - tree0 - cpu
        own = time.process_time() - own0
        names = _thread_names(engine.pid)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
    finally:
        if engine is not None:
            engine.terminate()
            engine.wait(30)
        peer.terminate()
        peer.wait(30)
    delivered = len({r["id"] for r in done})
    last = max(r["done"] for r in done) if done else started
    server_ms = [(r["done"] - r["at"]) * 1000 for r in done]
    elapsed = last - started
    return {
        "when": datetime.now().isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_average": os.getloadavg(),
        "reports": args.reports,
        "patients": args.patients,
        "senders": args.senders,
        "peer": args.peer,
        "cda": str(args.cda or ORU.name),
        "connections": args.connections,
        "acked": len(acks),
        "delivered": delivered,
        "ack_per_s": len(acks) / (acked - started),
        "reports_per_s": delivered / elapsed if elapsed > 0 else 0.0,
        "elapsed_s": elapsed,
        "server_ms_p50": statistics.median(server_ms) if server_ms else None,
        "server_ms_p90": statistics.quantiles(server_ms, n=10)[-1] if len(server_ms) > 1 else None,
        "server_busy_s": sum(server_ms) / 1000,
        "plan_processes": args.plan_processes,
        "own_process": args.own_process,
        "batch_wait": args.batch_wait,
        "engine_cpu_ms_per_report": cpu / max(1, delivered) * 1000,
        "planning_processes_cpu_ms_per_report": planners / max(1, delivered) * 1000,
        "all_engine_cpu_ms_per_report": (cpu + planners) / max(1, delivered) * 1000,
        "bench_senders_cpu_ms_per_report": own / max(1, delivered) * 1000,
        "engine_user_sys_ms_per_report": (
            round(user / max(1, delivered) * 1000, 2),
            round(system / max(1, delivered) * 1000, 2),
        ),
        "reports_per_engine_cpu_s": delivered / (cpu + planners) if cpu + planners > 0 else 0.0,
        "peer_cpu_ms_per_report": peer_cpu / max(1, delivered) * 1000,
        "engine_cpu_ms_per_report_by_thread": _by_name(threads0, threads, names, delivered),
        "stages_cpu_ms_per_report": _stages(args.cda),
        "work": str(work),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--reports", type=int, default=300)
    parser.add_argument("--patients", type=int, default=16)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument(
        "--cda", type=Path, default=None, help="a CDA to carry instead of the ORU's own"
    )
    parser.add_argument("--profile", default="", help="py-spy collapsed stacks of the engine")
    parser.add_argument("--peer", choices=("medplum", "fast"), default="medplum")
    parser.add_argument("--drain-timeout", type=float, default=300.0)
    parser.add_argument("--batch-wait", default="100ms", help="engine.batch_wait")
    parser.add_argument(
        "--plan-processes", type=int, default=0, help="engine.plan_processes (0: a thread)"
    )
    parser.add_argument(
        "--own-process",
        action="store_true",
        help="the MLLP listener's own_process (reading, journal, ACK in a process of its own)",
    )
    args = parser.parse_args(argv)
    result = run(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"fhir_send-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(result, indent=1))
    for key, value in result.items():
        print(f"{key:28} {value:.2f}" if isinstance(value, float) else f"{key:28} {value}")
    verdict = "met" if result["reports_per_s"] >= TARGET else "NOT met"
    print(f"target >= {TARGET:g} reports/s: {verdict}; JSON: {out}")
    return 0 if result["delivered"] == args.reports else 1


if __name__ == "__main__":
    sys.exit(main())
