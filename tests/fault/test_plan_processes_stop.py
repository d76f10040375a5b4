"""``eai run`` with ``engine.plan_processes``: stopped by a terminal's Ctrl-C, by SIGTERM.

Ctrl-C reaches the whole process group, the planning workers with the engine: the
workers ignore it, the engine stops them itself (exit 0, no worker "ended
unexpectedly", none left behind). A SIGTERM stops it the same way. Every message
acknowledged before is delivered, in order per patient.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from standins.mllp import MllpPeer
from tests._mllp import MllpSender, msa
from tests._proc import EaiProcess, fixed_routes, listener_port
from tests.engine_harness import adt

pytestmark = [pytest.mark.fault, pytest.mark.timeout(120)]


def _workers(pid: int) -> list[int]:
    """The planning workers among ``pid``'s children (multiprocessing's spawned processes;
    not its resource tracker, which outlives the engine by a moment)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children = [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmdline:
                out.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_planning_workers_stop_with_the_engine(tmp_path: Path, how: str) -> None:
    port = listener_port()
    with MllpPeer() as sink:
        path = fixed_routes(tmp_path, port, sink.port)
        path.write_text(path.read_text().replace("engine:\n", "engine:\n  plan_processes: 2\n", 1))
        eng = EaiProcess(path, port, tmp_path / "eai.stderr")
        try:
            eng.start()
            assert eng.proc is not None
            deadline = time.monotonic() + 20
            while len(workers := _workers(eng.proc.pid)) < 2:
                assert time.monotonic() < deadline, "no planning processes"
                time.sleep(0.05)
            sent = [f"S{n:03d}" for n in range(30)]
            with MllpSender(port) as sender:
                for n, cid in enumerate(sent):
                    code, _ = msa(sender.exchange(adt(cid, f"P{n % 3}")))
                    assert code == "AA"
            assert sink.wait_for(lambda s: set(sent) <= set(s.control_ids()), 30)
            if how == "ctrl-c":  # what the terminal does: the group, workers included
                for pid in (eng.proc.pid, *workers):
                    os.kill(pid, signal.SIGINT)
                eng.proc.wait(15)
                rc = eng.proc.returncode
            else:
                rc, _ = eng.terminate()
        finally:
            eng.close()
        arrivals = sink.control_ids()
    stderr = eng.stderr()
    assert rc == 0, stderr[-3000:]
    assert "engine stopped" in stderr
    assert "ended unexpectedly" not in stderr and "Traceback" not in stderr, stderr[-3000:]
    assert not any(_alive(pid) for pid in workers), "a planning process was left behind"
    for patient in range(3):
        mine = [c for c in sent if int(c[1:]) % 3 == patient]
        assert [c for c in arrivals if c in mine] == mine, "order per patient"
