"""SIGTERM while two senders stream: exit 0 in seconds, every AA'd message journaled, delivered.

SIGTERM is how systemd and Kubernetes stop the engine: stop accepting, finish the
blocks in hand (their ACK goes out after the commit), stop the pipeline and the
delivery workers, exit 0. What was acknowledged is in the journal and is delivered
by the next run.
"""

from __future__ import annotations

import threading
import time

import pytest

from standins.mllp import MllpPeer, ack_for
from tests._mllp import MllpError, MllpSender, msa
from tests._proc import EaiProcess, fixed_routes, journal, listener_port
from tests.engine_harness import adt

pytestmark = pytest.mark.fault


def _stream(index: int, port: int, done: threading.Event, aa: list[str], other: list[str]) -> None:
    """Send until the engine goes away: no reconnect, we want to see what SIGTERM does."""
    with MllpSender(port, timeout=10.0) as sender:
        for n in range(5000):
            if done.is_set():
                return
            cid = f"T{index}-{n:04d}"
            try:
                code, acked = msa(sender.exchange(adt(cid, f"TP{index}-{n % 3}")))
            except (MllpError, OSError):
                return
            if code == "AA" and acked == cid:
                aa.append(cid)
            else:
                other.append(f"{cid}:{code}:{acked}")


def test_sigterm_mid_flow_exits_zero_and_loses_nothing(tmp_path):
    port = listener_port()

    def slow_answer(payload: bytes) -> bytes:
        time.sleep(0.002)  # deliveries are in flight when SIGTERM comes
        return ack_for(payload)

    with MllpPeer(slow_answer) as slow_sink:
        path = fixed_routes(tmp_path, port, slow_sink.port, connections=2)
        eng = EaiProcess(path, port, tmp_path / "eai.stderr")
        done = threading.Event()
        aa: list[list[str]] = [[], []]
        other: list[str] = []
        threads = [
            threading.Thread(target=_stream, args=(i, port, done, aa[i], other), daemon=True)
            for i in range(2)
        ]
        try:
            eng.start()
            for t in threads:
                t.start()
            deadline = time.monotonic() + 20
            while sum(map(len, aa)) < 300 and time.monotonic() < deadline:
                time.sleep(0.01)
            rc, took = eng.terminate(timeout=15)
            after_term = time.monotonic()
            for t in threads:
                t.join(15)
            senders_ended = time.monotonic() - after_term
        finally:
            done.set()
            eng.close()
            for t in threads:
                t.join(15)
        first_run = slow_sink.control_ids()
    first_run_delivered = set(first_run)

    stderr = eng.stderr()
    assert rc == 0, stderr[-3000:]
    assert took < 5.0, f"SIGTERM took {took:.1f} s"
    assert "engine stopped" in stderr
    assert not any(t.is_alive() for t in threads)
    assert senders_ended < 5.0
    assert other == []
    acked = {cid for ids in aa for cid in ids}
    assert len(acked) >= 300

    # Every AA'd message is in the journal (read with the engine stopped).
    rows = journal(path)
    assert acked <= {r["control_id"] for r in rows}

    # The next run delivers everything not delivered yet, in order per patient.
    with MllpPeer() as sink:
        path = fixed_routes(tmp_path, port, sink.port, connections=2)
        eng2 = EaiProcess(path, port, tmp_path / "eai2.stderr")
        try:
            eng2.start()
            ok = sink.wait_for(lambda s: acked <= first_run_delivered | set(s.control_ids()), 30)
            rc2, _ = eng2.terminate()
        finally:
            eng2.close()
        second_run = sink.control_ids()
    assert ok, f"{len(acked - first_run_delivered - set(second_run))} message(s) not delivered"
    assert rc2 == 0
    rows = journal(path)
    assert journal(path, "--status", "received") == []
    assert all(d["status"] == "delivered" for r in rows for d in r["deliveries"])
    # Per patient, across both runs: first arrival order == AA order.
    arrivals = first_run + second_run
    for index in range(2):
        for p in range(3):
            mine = [c for c in aa[index] if int(c.split("-")[1]) % 3 == p]
            firsts = list(dict.fromkeys(c for c in arrivals if c in set(mine)))
            assert firsts == mine, f"patient TP{index}-{p}"
    print(
        f"\nSIGTERM: {len(acked)} AA'd, {len(first_run_delivered)} delivered before, "
        f"{len(set(second_run))} after restart ({len(second_run) - len(set(second_run))} dup); "
        f"exit {rc} in {took:.2f} s"
    )
