"""DICOM routing benchmark: ``storescu`` -> ``eai`` -> ``storescp``, against dcmtk and Orthanc.

Run by hand::

    .venv/bin/python bench/dicom_route.py [--images 500] [--rounds 3] [--profile]

Every party is its own process on 127.0.0.1 (``standins/dicom/``):

- (a) ``storescu`` -> dcmtk ``storescp`` (``+xa -pm +B +uf``: writes each file,
  no fsync);
- (b) ``storescu`` -> Orthanc (temporary config, fresh storage and SQLite index,
  ``SyncStorageArea: true`` as shipped: fsync of every stored file);
- (c) ``storescu`` -> ``eai run -c <tmp>/routes.yaml`` (fresh data dir and
  spool; one ``dicom`` listener routed to one ``dicom`` destination) ->
  ``storescp``.

Each scenario sends ``--images`` copies of pydicom's ``CT_small.dcm`` with new
Study/Series/SOP Instance UIDs (a fresh series per scenario and round, so no
peer sees an instance twice) with ONE ``storescu`` invocation: all files, one
association. Timings start just before ``storescu`` is launched:

- *receive* (a, b, c): until ``storescu`` exits with status 0, i.e. every
  C-STORE was answered with success (for eai: spooled, fsynced, journaled);
- *end-to-end* (c): until the downstream ``storescp`` holds every instance
  (its output directory is polled every 5 ms).

Rates are images/s and MB/s (10^6 bytes of the DICOM files as sent). Each round
runs the three scenarios (order rotated between rounds); the table shows the
median of ``--rounds`` and the ratios of those medians, all from this one
invocation (absolute figures drift ~25% between runs on the same machine).

Nagle's algorithm is off everywhere: dcmtk tools and Orthanc run with
``TCP_NODELAY=1`` in their environment (dcmtk only sets the socket option when
that variable is set; Orthanc's DICOM side is dcmtk), Orthanc's HTTP side gets
``"TcpNoDelay": true``; eai sets the option on its own sockets.

Scenario (c) runs only when ``eai schema`` knows a ``dicom`` listener type
(``--skip-eai`` skips it). ``--profile [gil|all]`` adds one unmeasured eai
round with ``py-spy record`` attached (``gil``: samples of the thread holding
the GIL; ``all``: every thread, idle included) and prints where the engine's
time goes, with the CPU time of each of its threads.

Writes JSON to ``bench/results/`` (gitignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from standins.dicom import (  # noqa: E402
    HOST,
    Orthanc,
    StoreScp,
    is_listening,
    make_ct_series,
    require_binary,
    storescu,
)
from standins.net import free_port  # noqa: E402

#: From the issue: receive-and-spool ahead of Orthanc's receive rate and at least
#: 0.3x storescp's; end-to-end store-and-forward at least 0.8x Orthanc's receive rate.
TARGETS = {
    "eai_receive_vs_orthanc": 1.0,
    "eai_receive_vs_storescp": 0.3,
    "eai_e2e_vs_orthanc": 0.8,
}
SCU_AE = "STORESCU"
EAI_AE = "EAI"
DEST_AE = "STORESCP"

ROUTES = """\
engine:
  data_dir: {data_dir}
  database: sqlite:///{data_dir}/eai.db
listeners:
  - name: modality
    type: dicom
    ae_title: {eai_ae}
    bind: 127.0.0.1:{port}
    allowed_callers:
      - ae_title: {scu_ae}
    spool_dir: {spool_dir}
destinations:
  - name: emage
    type: dicom
    ae_title: {dest_ae}
    host: 127.0.0.1
    port: {dest_port}
    calling_ae: {eai_ae}
routes:
  - name: modality-to-emage
    from: [modality]
    to: [emage]
"""


# -- helpers ------------------------------------------------------------------------


def _eai_cmd() -> list[str]:
    eai = Path(sys.executable).with_name("eai")
    return [str(eai)] if eai.exists() else [sys.executable, str(REPO / "cli.py")]


def eai_has_dicom() -> tuple[bool, str]:
    """Whether ``eai schema`` knows a ``dicom`` listener/destination type."""
    try:
        out = subprocess.run(
            [*_eai_cmd(), "schema"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"eai schema failed: {exc}"
    if '"dicom"' in out.stdout:
        return True, ""
    return False, '`eai schema` has no "dicom" type yet (the DICOM router has not landed)'


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    """Live descendants of ``pid`` (from each process's parent in ``/proc/<pid>/stat``)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents[int(entry.name)] = ppid
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found.extend(kids)
        todo.extend(kids)
    return found


def _first_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    lines = (out.stdout + out.stderr).strip().splitlines()
    return lines[0].strip() if lines else "?"


def _pkg_version(name: str) -> str:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # noqa: BLE001 - reporting only
        return "-"


def _machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": mem,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "tmp_fs": _fs_type(Path(tempfile.gettempdir())),
        "dcmtk": _first_line([require_binary("storescp"), "--version"]).strip("$ "),
        "orthanc": "Orthanc " + _first_line([require_binary("Orthanc"), "--version"]).split()[-1],
        "pydicom": _pkg_version("pydicom"),
        "pynetdicom": _pkg_version("pynetdicom"),
    }


def _fs_type(path: Path) -> str:
    """File system type of ``path`` (from /proc/mounts, longest matching mount point)."""
    best, kind = "", "?"
    try:
        real = str(path.resolve())
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) > 2 and (real == parts[1] or real.startswith(parts[1].rstrip("/") + "/")):
                if len(parts[1]) >= len(best):
                    best, kind = parts[1], parts[2]
    except OSError:
        pass
    return kind


# -- host load --------------------------------------------------------------------


def _cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return (0, 0)
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields) - idle, sum(fields))


def _busy_since(start: tuple[int, int]) -> float:
    """Fraction of all CPUs busy since ``start`` (everything: ours and others')."""
    end = _cpu_jiffies()
    total = end[1] - start[1]
    return round((end[0] - start[0]) / total, 2) if total > 0 else float("nan")


def wait_quiet(max_wait: float, threshold: float = 0.25) -> float:
    """Wait (up to ``max_wait`` s) until the host is idle: less than ``threshold`` of
    its CPUs busy over one second. Others share this machine; returns the last busy
    fraction seen (recorded with each measure)."""
    deadline = time.monotonic() + max_wait
    while True:
        start = _cpu_jiffies()
        time.sleep(1.0)
        busy = _busy_since(start)
        if not busy >= threshold or time.monotonic() >= deadline:
            return busy


# -- measurements -------------------------------------------------------------------


@dataclass
class Measure:
    scenario: str
    images: int
    bytes: int
    seconds: float
    ok: bool = True
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.ok and self.seconds > 0 else float("nan")

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.ok and self.seconds > 0 else float("nan")

    def summary(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "ok": self.ok,
            "error": self.error,
            "images": self.images,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 4),
            "images_per_s": round(self.images_per_s, 1),
            "mb_per_s": round(self.mb_per_s, 2),
            **self.extra,
        }


def _send(port: int, called_ae: str, files: list[Path], timeout: float) -> tuple[float, int, str]:
    """One storescu with all ``files``; (seconds, returncode, output tail)."""
    t0 = time.perf_counter()
    rc, out = storescu(HOST, port, files, called_ae, SCU_AE, timeout=timeout)
    return time.perf_counter() - t0, rc, "\n".join(out.strip().splitlines()[-15:])


def measure_storescp(work: Path, files: list[Path], nbytes: int, timeout: float) -> Measure:
    with StoreScp(work / "scp-out", ae_title=DEST_AE) as scp:
        pid = scp.proc.pid if scp.proc else 0
        cpu0 = _cpu_seconds(pid)
        seconds, rc, out = _send(scp.port, DEST_AE, files, timeout)
        cpu = _cpu_seconds(pid) - cpu0
        if rc != 0:
            return Measure("storescp", len(files), nbytes, seconds, False, f"storescu {rc}: {out}")
        got = len(scp.wait_files(len(files), timeout=30))
    extra = {"received": got, **_peer_cpu(cpu, len(files))}
    return Measure("storescp", len(files), nbytes, seconds, extra=extra)


def _peer_cpu(cpu: float, n: int) -> dict[str, float]:
    return {"peer_cpu_s": round(cpu, 2), "peer_cpu_per_image_ms": round(1000 * cpu / n, 2)}


def _serve_reference(port: int, out_dir: Path) -> None:
    """The reference SCP (``--serve-reference``, a child process): minimal pynetdicom
    C-STORE SCP that writes each instance (preamble, file meta, dataset as received)
    to its own file and fsyncs it before answering success. TCP_NODELAY on."""
    import socket as socket_mod
    import uuid

    from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
    from pynetdicom.dsutils import encode_file_meta

    out_dir.mkdir(parents=True, exist_ok=True)

    def on_open(event: Any) -> None:
        event.assoc.dul.socket.socket.setsockopt(socket_mod.IPPROTO_TCP, socket_mod.TCP_NODELAY, 1)

    def on_store(event: Any) -> int:
        path = out_dir / uuid.uuid4().hex
        with open(path, "wb") as f:
            f.write(b"\0" * 128 + b"DICM" + encode_file_meta(event.file_meta))
            f.write(event.request.DataSet.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        return 0x0000

    ae = AE(ae_title="REFSCP")
    for cx in AllStoragePresentationContexts:
        ae.add_supported_context(str(cx.abstract_syntax), ALL_TRANSFER_SYNTAXES)
    handlers: list[Any] = [(evt.EVT_C_STORE, on_store), (evt.EVT_CONN_OPEN, on_open)]
    server = ae.start_server((HOST, port), block=False, evt_handlers=handlers)
    signal.sigwait([signal.SIGTERM, signal.SIGINT])
    if server is not None:
        server.shutdown()


def measure_reference(work: Path, files: list[Path], nbytes: int, timeout: float) -> Measure:
    port = free_port(HOST)
    out = work / "ref-out"
    with (work / "reference.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve-reference", str(port), str(out)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while not is_listening(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                return Measure("reference", len(files), nbytes, 0, False, "reference SCP failed")
            time.sleep(0.05)
        cpu0 = _cpu_seconds(proc.pid)
        seconds, rc, text = _send(port, "REFSCP", files, timeout)
        cpu = _cpu_seconds(proc.pid) - cpu0
        if rc != 0:
            return Measure(
                "reference", len(files), nbytes, seconds, False, f"storescu {rc}: {text}"
            )
        got = sum(1 for _ in out.iterdir())
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    extra = {"received": got, **_peer_cpu(cpu, len(files))}
    return Measure("reference", len(files), nbytes, seconds, extra=extra)


def measure_orthanc(work: Path, files: list[Path], nbytes: int, timeout: float) -> Measure:
    with Orthanc(work / "orthanc", ae_title="ORTHANC") as orthanc:
        pid = orthanc.proc.pid if orthanc.proc else 0
        cpu0 = _cpu_seconds(pid)
        seconds, rc, out = _send(orthanc.port, "ORTHANC", files, timeout)
        cpu = _cpu_seconds(pid) - cpu0
        if rc != 0:
            return Measure("orthanc", len(files), nbytes, seconds, False, f"storescu {rc}: {out}")
        count = orthanc.instances_count()
    if count != len(files):
        return Measure(
            "orthanc", len(files), nbytes, seconds, False, f"Orthanc holds {count} instances"
        )
    extra = {"received": count, **_peer_cpu(cpu, len(files))}
    return Measure("orthanc", len(files), nbytes, seconds, extra=extra)


class EaiEngine:
    """``eai run -c <work>/routes.yaml`` as a subprocess, listener on a free port."""

    def __init__(self, work: Path, dest_port: int) -> None:
        self.work = work
        self.port = free_port(HOST)
        self.data_dir = work / "var"
        self.routes = work / "routes.yaml"
        self.routes.write_text(
            ROUTES.format(
                data_dir=self.data_dir,
                spool_dir=self.data_dir / "spool",
                port=self.port,
                dest_port=dest_port,
                eai_ae=EAI_AE,
                scu_ae=SCU_AE,
                dest_ae=DEST_AE,
            )
        )
        self.log_path = work / "engine.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def check(self) -> str:
        """``eai check`` of the generated routes: '' when valid, else its output."""
        out = subprocess.run(
            [*_eai_cmd(), "check", "-c", str(self.routes)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=self.work,
        )
        return "" if out.returncode == 0 else (out.stdout + out.stderr).strip()

    def start(self) -> EaiEngine:
        env = {k: v for k, v in os.environ.items() if k != "EAI_KEY"}
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [*_eai_cmd(), "run", "-c", str(self.routes)],
                cwd=self.work,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"eai exited with {self.proc.returncode}:\n{self.log_tail()}")
            if is_listening(self.port):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"eai did not open its DICOM listener:\n{self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def cpu(self) -> float:
        """CPU seconds so far of the engine and its live child processes (forwarders)."""
        user, system = self.cpu_split()
        return user + system

    def children_cpu(self) -> float:
        """CPU seconds so far of the engine's live child processes only."""
        if self.proc is None:
            return float("nan")
        return sum(_cpu_seconds(pid) for pid in _descendants(self.proc.pid))

    def cpu_split(self) -> tuple[float, float]:
        """(user, system) CPU seconds so far, the engine's live child processes included."""
        if self.proc is None:
            return (float("nan"), float("nan"))
        user = system = 0.0
        ticks = os.sysconf("SC_CLK_TCK")
        for pid in (self.proc.pid, *_descendants(self.proc.pid)):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # ended since it was listed
            user += int(fields[11]) / ticks
            system += int(fields[12]) / ticks
        return (user, system)

    def thread_cpu(self) -> dict[int, float]:
        """CPU seconds so far per thread id (``/proc/<pid>/task/<tid>/stat``)."""
        out: dict[int, float] = {}
        if self.proc is None:
            return out
        ticks = os.sysconf("SC_CLK_TCK")
        for task in Path(f"/proc/{self.proc.pid}/task").glob("*"):
            try:
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[int(task.name)] = (int(fields[11]) + int(fields[12])) / ticks
        return out

    def stop(self) -> int | None:
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode


def measure_eai(
    work: Path,
    files: list[Path],
    nbytes: int,
    timeout: float,
    profile_to: Path | None = None,
    profile_mode: str = "gil",
) -> tuple[Measure, Measure]:
    """(receive-and-spool, end-to-end) through eai; py-spy attached when ``profile_to``."""
    n = len(files)

    def failed(msg: str, seconds: float = 0.0) -> tuple[Measure, Measure]:
        if engine.log_path.exists():
            msg += f"\n(engine log kept: {keep_log(engine.log_path, 'failed')})"
        return (
            Measure("eai_receive", n, nbytes, seconds, False, msg),
            Measure("eai_e2e", n, nbytes, seconds, False, msg),
        )

    with StoreScp(work / "dest-out", ae_title=DEST_AE) as dest:
        engine = EaiEngine(work, dest.port)
        problems = engine.check()
        if problems:
            return failed(f"eai check refused the benchmark routes:\n{problems}")
        spy: subprocess.Popen[bytes] | None = None
        try:
            engine.start()
            # The forwarding process starts with the engine; let its imports finish (~0.5 s
            # of CPU) before measuring, as they are not a cost per image.
            time.sleep(1.5)
            if profile_to is not None and engine.proc is not None:
                spy = _start_profiler(engine.proc.pid, profile_to, timeout, profile_mode)
                time.sleep(1.0)  # let py-spy attach before the load starts
            cpu0, threads0, split0 = engine.cpu(), engine.thread_cpu(), engine.cpu_split()
            children0 = engine.children_cpu()
            result: dict[str, Any] = {}

            def send() -> None:
                result["send"] = _send(engine.port, EAI_AE, files, timeout)

            t0 = time.perf_counter()
            sender = threading.Thread(target=send, daemon=True)
            sender.start()
            deadline = t0 + timeout
            e2e = float("nan")
            while time.perf_counter() < deadline:
                if dest.count() >= n:
                    e2e = time.perf_counter() - t0
                    break
                if not sender.is_alive() and result.get("send", (0, 0))[1] != 0:
                    break
                time.sleep(0.005)
            sender.join(timeout)
            cpu = engine.cpu() - cpu0
            split = engine.cpu_split()
            children = engine.children_cpu() - children0
            threads = {
                tid: round(t - threads0.get(tid, 0.0), 2)
                for tid, t in engine.thread_cpu().items()
                if t - threads0.get(tid, 0.0) >= 0.01
            }
            extra = {
                "eai_cpu_s": round(cpu, 2),
                "eai_cpu_user_s": round(split[0] - split0[0], 2),
                "eai_cpu_system_s": round(split[1] - split0[1], 2),
                "eai_cpu_per_image_ms": round(1000 * cpu / n, 2),
                # of which the engine's child processes (forwarders), if any
                "eai_children_cpu_s": round(children, 2),
                # CPU seconds during the phase per thread id (threads still alive at the end);
                # the --profile round names them.
                "eai_threads_cpu_s": dict(sorted(threads.items(), key=lambda kv: -kv[1])),
            }
            if "send" not in result:
                return failed(f"storescu did not finish in {timeout}s", timeout)
            seconds, rc, out = result["send"]
            if rc != 0:
                return failed(f"storescu {rc}: {out}\neai log:\n{engine.log_tail()}", seconds)
            receive = Measure("eai_receive", n, nbytes, seconds, extra=extra)
            if e2e != e2e:  # NaN: not all arrived
                got = dest.count()
                msg = f"storescp holds {got}/{n} after {timeout}s\neai log:\n{engine.log_tail()}"
                msg += f"\n(engine log kept: {keep_log(engine.log_path, 'e2e-timeout')})"
                return receive, Measure("eai_e2e", n, nbytes, timeout, False, msg)
            lag: dict[str, Any] = {"forward_lag_s": round(e2e - seconds, 4)}
            if e2e - seconds > 5.0:  # an anomaly worth a look: keep the engine's log
                lag["engine_log"] = keep_log(engine.log_path, "slow-forward")
            return receive, Measure("eai_e2e", n, nbytes, e2e, extra=lag)
        finally:
            if spy is not None:
                _stop_profiler(spy)
            rc = engine.stop()
            if rc not in (0, None, -signal.SIGTERM):
                print(f"eai exited with {rc}:\n{engine.log_tail()}", file=sys.stderr)


def keep_log(path: Path, why: str) -> str:
    """Copy an engine log to bench/results/ (the work dir is removed); its new path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    dest = RESULTS / f"dicom_route-{datetime.now():%Y%m%d-%H%M%S}-{why}-engine.log"
    try:
        shutil.copyfile(path, dest)
    except OSError as exc:
        return f"(not kept: {exc})"
    return str(dest.relative_to(REPO))


# -- profiling ----------------------------------------------------------------------


def _start_profiler(
    pid: int, out: Path, seconds: float, mode: str
) -> subprocess.Popen[bytes] | None:
    """py-spy on ``pid``: ``gil`` samples only the thread holding the GIL (where the
    Python CPU time goes), ``all`` every thread, idle ones included (wall time)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("--profile: py-spy not found (.venv/bin/pip install py-spy)", file=sys.stderr)
        return None
    cmd = [spy, "record", "--pid", str(pid), "--threads", "--rate", "200"]
    cmd += ["--duration", str(int(seconds) + 5), "--format", "raw", "-o", str(out)]
    cmd.append("--gil" if mode == "gil" else "--idle")
    if os.environ.get("BENCH_PYSPY_NATIVE"):
        cmd.append("--native")
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _stop_profiler(spy: subprocess.Popen[bytes]) -> None:
    # SIGINT makes py-spy write what it sampled so far.
    if spy.poll() is None:
        spy.send_signal(signal.SIGINT)
    try:
        spy.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.communicate()


def summarize_profile(path: Path, top: int = 25) -> dict[str, Any]:
    """From py-spy's raw (collapsed) output: samples per thread, and the functions
    with the most self and inclusive samples (idle frames excluded from the ratios)."""
    per_thread: Counter[str] = Counter()
    self_t: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return {"error": f"no profile at {path}"}
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        per_thread[frames[0]] += n
        self_t[frames[-1]] += n
        for frame in set(frames[1:]):
            incl[frame] += n
    return {
        "samples": total,
        "threads": dict(per_thread.most_common()),
        "self": [(f, n, round(100 * n / total, 1)) for f, n in self_t.most_common(top)],
        "inclusive": [(f, n, round(100 * n / total, 1)) for f, n in incl.most_common(top)],
    }


# -- the run ------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    vals = [v for v in values if v == v]
    return statistics.median(vals) if vals else float("nan")


def _ratio(a: float, b: float) -> float:
    return a / b if b and b == b and a == a else float("nan")


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = datetime.now()
    with_eai, why_not = (False, "--skip-eai") if args.skip_eai else eai_has_dicom()
    if not with_eai:
        print(f"scenario (c) skipped: {why_not}", file=sys.stderr)
    tmp = Path(tempfile.mkdtemp(prefix="eai-dicom-bench-", dir=args.tmpdir))
    rounds: list[dict[str, Measure]] = []
    profile: dict[str, Any] | None = None
    try:
        scenarios: list[tuple[str, Callable[[Path, list[Path], int], list[Measure]]]] = [
            ("storescp", lambda w, f, b: [measure_storescp(w, f, b, args.timeout)]),
            ("orthanc", lambda w, f, b: [measure_orthanc(w, f, b, args.timeout)]),
        ]
        if with_eai:
            scenarios.append(("eai", lambda w, f, b: list(measure_eai(w, f, b, args.timeout))))
        if args.reference:
            scenarios.append(
                ("reference", lambda w, f, b: [measure_reference(w, f, b, args.timeout)])
            )
        for r in range(args.rounds):
            got: dict[str, Measure] = {}
            order = scenarios[r % len(scenarios) :] + scenarios[: r % len(scenarios)]
            for name, fn in order:
                quiet = wait_quiet(args.quiet_wait)
                work = tmp / f"round{r}" / name
                files = make_ct_series(args.images, work / "in")
                nbytes = sum(p.stat().st_size for p in files)
                busy0 = _cpu_jiffies()
                for m in fn(work, files, nbytes):
                    m.extra["host_busy_before"] = quiet
                    m.extra["host_busy_during"] = _busy_since(busy0)
                    got[m.scenario] = m
                    status = f"{m.images_per_s:8.1f} img/s" if m.ok else f"FAILED: {m.error}"
                    print(f"round {r + 1}/{args.rounds} {m.scenario:12s} {status}", flush=True)
                if not args.keep:
                    shutil.rmtree(work, ignore_errors=True)
            rounds.append(got)
        if with_eai and args.profile:
            RESULTS.mkdir(parents=True, exist_ok=True)
            out = RESULTS / f"dicom_route-{started:%Y%m%d-%H%M%S}-profile.txt"
            work = tmp / "profile"
            files = make_ct_series(args.images, work / "in")
            nbytes = sum(p.stat().st_size for p in files)
            rec, e2e = measure_eai(
                work, files, nbytes, args.timeout, profile_to=out, profile_mode=args.profile
            )
            summary = summarize_profile(out)
            labels = {
                int(t.split("(", 1)[1].split(")", 1)[0]): t
                for t in summary.get("threads", {})
                if t.startswith("thread (") and t.split("(", 1)[1].split(")", 1)[0].isdigit()
            }
            cpu = rec.extra.get("eai_threads_cpu_s", {})
            profile = {
                "file": str(out.relative_to(REPO)),
                "mode": args.profile,
                "eai_cpu_s": rec.extra.get("eai_cpu_s"),
                "eai_threads_cpu_s_named": {labels.get(t, str(t)): c for t, c in cpu.items()},
                "receive_images_per_s_under_profiler": round(rec.images_per_s, 1),
                "e2e_images_per_s_under_profiler": round(e2e.images_per_s, 1),
                **summary,
            }
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    def med(scenario: str, attr: str) -> float:
        return _median([getattr(r[scenario], attr) for r in rounds if scenario in r])

    names = ["storescp", "orthanc"] + (["eai_receive", "eai_e2e"] if with_eai else [])
    names += ["reference"] if args.reference else []
    median = {
        s: {
            "images_per_s": round(med(s, "images_per_s"), 1),
            "mb_per_s": round(med(s, "mb_per_s"), 2),
            # CPU of the receiving server (eai: the whole engine) per image, in ms.
            "cpu_ms_per_image": round(
                _median(
                    [
                        float(r[s].extra.get("peer_cpu_per_image_ms", "nan"))
                        if s != "eai_receive"
                        else float(r[s].extra.get("eai_cpu_per_image_ms", "nan"))
                        for r in rounds
                        if s in r
                    ]
                ),
                2,
            ),
        }
        for s in names
    }
    ratios: dict[str, float] = {}
    per_round: list[dict[str, float]] = []
    if with_eai:
        a, b = median["storescp"]["images_per_s"], median["orthanc"]["images_per_s"]
        c1, c2 = median["eai_receive"]["images_per_s"], median["eai_e2e"]["images_per_s"]
        ratios = {
            "eai_receive_vs_orthanc": round(_ratio(c1, b), 2),
            "eai_receive_vs_storescp": round(_ratio(c1, a), 2),
            "eai_e2e_vs_orthanc": round(_ratio(c2, b), 2),
            "orthanc_vs_storescp": round(_ratio(b, a), 2),
        }
        for one in rounds:
            ra, rb = one["storescp"].images_per_s, one["orthanc"].images_per_s
            rc1, rc2 = one["eai_receive"].images_per_s, one["eai_e2e"].images_per_s
            per_round.append(
                {
                    "eai_receive_vs_orthanc": round(_ratio(rc1, rb), 2),
                    "eai_receive_vs_storescp": round(_ratio(rc1, ra), 2),
                    "eai_e2e_vs_orthanc": round(_ratio(rc2, rb), 2),
                }
            )
    else:
        a, b = median["storescp"]["images_per_s"], median["orthanc"]["images_per_s"]
        ratios = {"orthanc_vs_storescp": round(_ratio(b, a), 2)}
    met = {k: bool(ratios[k] >= t) for k, t in TARGETS.items() if k in ratios}
    return {
        "benchmark": "dicom_route",
        "started": started.isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": _machine(),
        "images": args.images,
        "rounds_count": args.rounds,
        "eai": with_eai,
        "eai_skipped_because": why_not,
        "median": median,
        "ratios": ratios,
        "ratios_per_round": per_round,
        "targets": TARGETS,
        "met": met,
        "rounds": [{k: m.summary() for k, m in r.items()} for r in rounds],
        "profile": profile,
    }


LABELS = {
    "storescp": "(a) storescu -> storescp",
    "orthanc": "(b) storescu -> Orthanc",
    "eai_receive": "(c) storescu -> eai, receive-and-spool",
    "eai_e2e": "(c) storescu -> eai -> storescp, end-to-end",
    "reference": "(ref) storescu -> minimal pynetdicom SCP, fsync",
}


def print_report(res: dict[str, Any]) -> None:
    n = res["images"]
    print(f"\n{n} images (CT_small, one storescu association), median of {res['rounds_count']}:")
    print(
        f"{'scenario':46s} {'images/s':>9s} {'MB/s':>7s} {'CPU ms/img':>10s}  per round (images/s)"
    )
    for s, m in res["median"].items():
        rounds = [r[s]["images_per_s"] if r[s]["ok"] else "FAIL" for r in res["rounds"] if s in r]
        cpu = m["cpu_ms_per_image"]
        cpu_txt = "" if cpu != cpu else f"{cpu:.2f}"
        print(
            f"{LABELS[s]:46s} {m['images_per_s']:9.1f} {m['mb_per_s']:7.2f} {cpu_txt:>10s}"
            f"  {rounds}"
        )
    if res["ratios"]:
        print("\nratios (of the medians) vs targets:")
        for k, v in res["ratios"].items():
            t = res["targets"].get(k)
            mark = "" if t is None else (f"  target >= {t}: " + ("met" if v >= t else "MISSED"))
            print(f"  {k:26s} {v:6.2f}{mark}")
    if not res["eai"]:
        print(f"\n(c) not run: {res['eai_skipped_because']}")
    prof = res.get("profile")
    if prof and "samples" in prof:
        print(f"\nprofile, mode {prof['mode']} ({prof['samples']} samples) -> {prof['file']}")
        print(f"  eai CPU during the round: {prof['eai_cpu_s']} s; per thread (s):")
        for name, sec in prof["eai_threads_cpu_s_named"].items():
            print(f"    {sec:6.2f}  {name}")
        print("  samples per thread:", prof["threads"])
        print("  top self:")
        for f, _, pct in prof["self"][:15]:
            print(f"    {pct:5.1f}%  {f}")
        print("  top inclusive:")
        for f, _, pct in prof["inclusive"][:20]:
            print(f"    {pct:5.1f}%  {f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--images", type=int, default=500, help="images per scenario (1-20000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument("--timeout", type=float, default=300.0, help="bound per scenario (s)")
    parser.add_argument("--skip-eai", action="store_true", help="only (a) and (b)")
    parser.add_argument(
        "--profile",
        nargs="?",
        const="gil",
        choices=["gil", "all"],
        help="extra eai round under py-spy: gil (default: the thread holding the GIL) "
        "or all (every thread, idle included)",
    )
    parser.add_argument(
        "--reference",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure a minimal pynetdicom SCP that fsyncs each instance (default: on)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=60.0,
        help="before each scenario, wait up to this long for the host to be idle "
        "(< 25%% CPU busy over 1 s); 0: do not wait",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--serve-reference", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--tmpdir", default=None, help="where the temporary directory goes")
    args = parser.parse_args(argv)
    if args.serve_reference:
        _serve_reference(int(args.serve_reference[0]), Path(args.serve_reference[1]))
        return 0
    if not 1 <= args.images <= 20000 or not 1 <= args.rounds <= 20:
        parser.error("--images must be 1..20000 and --rounds 1..20")
    res = run(args)
    print_report(res)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"dicom_route-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(res, indent=2, default=str))
    print(f"\nresults: {out.relative_to(REPO)}")
    failed = any(not m["ok"] for r in res["rounds"] for m in r.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
