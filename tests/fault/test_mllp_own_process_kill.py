"""kill -9 of an ``own_process`` MLLP listener's process, then of the engine above it.

- The listener's process killed at random moments while senders stream: the engine
  starts a new one on the same port each time; every message acknowledged AA is
  delivered, in order per patient; what was not answered is resent by its sender and
  answered (the stored ACK for what the journal already had).
- The engine killed: its listener's process sees the engine's end of the pipe close and
  ends by itself (no orphan holding the port); the next engine listens again.
"""

from __future__ import annotations

import os
import random
import re
import signal
import threading
import time
from pathlib import Path

import pytest

from connectors.mllp.own_process import OwnProcessListener
from standins.mllp import MllpPeer
from tests._mllp import MllpError, MllpSender, msa
from tests._proc import EaiProcess, fixed_routes, listener_port, wait_port
from tests.engine_harness import EngineThread, adt
from tests.integration.test_mllp_own_process import LISTENER, own_process_routes

pytestmark = pytest.mark.fault

SEED = 20261207
SENDERS = 4
KILLS = 3
PER_SENDER = 400
DEADLINE = 120.0


def _sender(index: int, port: int, stop: threading.Event, aa: dict[str, list[str]]) -> None:
    """Sends its two patients' messages in turn, each until it gets AA (same MSH-10)."""
    sender = MllpSender(port, timeout=10.0)
    deadline = time.monotonic() + DEADLINE
    try:
        for n in range(PER_SENDER):
            if stop.is_set():
                return
            patient = f"KP{index}-{n % 2}"
            cid = f"K{index}-{n:04d}"
            while time.monotonic() < deadline:
                try:
                    code, acked = msa(sender.exchange(adt(cid, patient)))
                except (MllpError, OSError):
                    sender.reset()
                    time.sleep(0.02)
                    continue
                assert (code, acked) == ("AA", cid)
                aa.setdefault(patient, []).append(cid)
                break
            else:
                raise AssertionError(f"{cid} never got AA")
    finally:
        sender.close()


def test_killed_listener_process_is_replaced_and_loses_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rng = random.Random(SEED)
    with MllpPeer() as sink:
        with EngineThread(own_process_routes(tmp_path, sink.port)) as eng:
            listener = eng.engine.listeners[LISTENER]
            assert isinstance(listener, OwnProcessListener)
            port = eng.port(LISTENER)
            logs: list[dict[str, list[str]]] = [{} for _ in range(SENDERS)]
            stop = threading.Event()
            threads = [
                threading.Thread(target=_sender, args=(i, port, stop, logs[i]), daemon=True)
                for i in range(SENDERS)
            ]
            for t in threads:
                t.start()
            killed: list[int] = []
            not_serving = 0
            for _ in range(KILLS):
                time.sleep(rng.uniform(0.3, 1.0))
                deadline = time.monotonic() + 30
                while (pid := listener.pid) is None or pid in killed:
                    assert time.monotonic() < deadline, "no new listener process"
                    time.sleep(0.02)
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                # not serving (readiness down) until the new process listens, 0.5 s on
                while listener.serving and listener.pid == pid:
                    assert time.monotonic() < deadline, "the death went unnoticed"
                    time.sleep(0.005)
                not_serving += 1 if not listener.serving else 0
            for t in threads:
                t.join(DEADLINE + 10)
            assert not any(t.is_alive() for t in threads), "a sender is stuck"
            assert listener.restarts == KILLS
            assert not_serving == KILLS and listener.serving
            assert listener.port == port
            expected = {cid for log in logs for ids in log.values() for cid in ids}
            assert len(expected) == SENDERS * PER_SENDER
            assert sink.wait_for(lambda s: expected <= set(s.control_ids()), 60)
            received = sink.control_ids()

    # every AA'd message delivered; per patient, first arrivals in AA order
    patient_of = {cid: p for log in logs for p, ids in log.items() for cid in ids}
    firsts: dict[str, list[str]] = {}
    for cid in dict.fromkeys(received):
        firsts.setdefault(patient_of[cid], []).append(cid)
    for log in logs:
        for patient, ids in log.items():
            assert firsts[patient] == ids, patient
    ended = [r.getMessage() for r in caplog.records if "its process" in r.getMessage()]
    for pid in killed:
        assert any(f"its process {pid} ended (exit code -9)" in m for m in ended), ended


def _child_pid(log: str) -> int:
    found = re.findall(r"listener chu-x-adt: MLLP on \S+ \(port \d+\), in process (\d+)", log)
    assert found, log[-2000:]
    return int(found[-1])


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # a zombie (its parent is dead, init reaps it) counts as gone
        try:
            if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
                return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


def test_killed_engine_takes_its_listener_process_with_it(tmp_path: Path) -> None:
    port = listener_port()
    with MllpPeer() as sink:
        path = fixed_routes(tmp_path, port, sink.port)
        text = path.read_text()
        path.write_text(
            text.replace("    type: mllp\n", "    type: mllp\n    own_process: true\n", 1)
        )
        with EaiProcess(path, port, tmp_path / "eai.stderr") as eng:
            eng.start(timeout=60)
            with MllpSender(port) as sender:
                assert msa(sender.exchange(adt("E1", "EP1")))[0] == "AA"
            child = _child_pid(eng.stderr())
            eng.kill9()
            assert _gone(child, 15), "the listener's process outlived its engine"
            assert not wait_port(port, 0.5), "the port is still open"
            eng.start(timeout=60)
            with MllpSender(port) as sender:
                assert msa(sender.exchange(adt("E2", "EP1")))[0] == "AA"
            assert _child_pid(eng.stderr()) != child
            assert sink.wait_for(lambda s: {"E1", "E2"} <= set(s.control_ids()), 30)
            rc, _ = eng.terminate()
            assert rc == 0
