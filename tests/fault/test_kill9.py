"""kill -9 while 8 senders stream: nothing acknowledged AA is lost, order per patient is kept.

The core promise: an AA leaves the engine only after the message is committed, and
what is committed is delivered at least once, each patient's messages in the order
they were acknowledged, whatever moment the process dies at. The engine runs as a
subprocess on SQLite (on PostgreSQL with ``EAI_TEST_DATABASE=postgresql``); it is
killed with SIGKILL at 20 seeded random moments and restarted on the same data_dir each
time, with nothing done by hand in between.

How long the kill phase lasts depends on the machine: each restart waits for a fresh
process to import and open its journal, a few seconds of wall time on a loaded machine.
So a sender's deadline for its unanswered message is not counted from the test's start
but from the moment the last engine listens: from then on, every message still pending
must get its AA within ANSWER_TIMEOUT.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field

import pytest

from standins.mllp import MllpPeer
from tests._mllp import MllpError, MllpSender, msa
from tests._proc import EaiProcess, eai_cli, fixed_routes, journal, listener_port
from tests.engine_harness import adt

pytestmark = pytest.mark.fault

SEED = 20261123
SENDERS = 8
PATIENTS_PER_SENDER = 2
KILLS = 20
MAX_MESSAGES_PER_SENDER = 2000
DRAIN_TIMEOUT = 60.0
ANSWER_TIMEOUT = 30.0
"""Seconds, after the last restart listens, for every pending message to get its AA."""
OUTER_LIMIT = 240.0
"""Seconds: the senders' bound while the kill phase runs (each restart is itself bounded
by EaiProcess.start's timeout; pytest's own timeout is 300 s)."""


class Deadline:
    """A monotonic time the senders give up at; moved once the last engine listens."""

    def __init__(self, at: float) -> None:
        self.at = at

    def passed(self) -> bool:
        return time.monotonic() > self.at


@dataclass
class SenderLog:
    """What one sender thread saw: AA'd control ids in order, per patient."""

    aa: dict[str, list[str]] = field(default_factory=dict)
    anomalies: list[str] = field(default_factory=list)
    unfinished: str = ""


def _sender(
    index: int,
    port: int,
    stop_new: threading.Event,
    deadline: Deadline,
    out: SenderLog,
) -> None:
    """Sends its patients' messages one after the other; a message without an answer is
    sent again with the same MSH-10 (the journal answers a retransmission with the
    stored ACK) until it gets AA or the deadline passes."""
    patients = [f"K{index}P{j}" for j in range(PATIENTS_PER_SENDER)]
    for p in patients:
        out.aa[p] = []
    sender = MllpSender(port, timeout=10.0)
    try:
        for n in range(MAX_MESSAGES_PER_SENDER):
            if stop_new.is_set():
                return
            patient = patients[n % len(patients)]
            cid = f"S{index}-{n:04d}"
            payload = adt(cid, patient)
            while True:
                if deadline.passed():
                    out.unfinished = cid
                    return
                try:
                    ack = sender.exchange(payload)
                    code, acked = msa(ack)
                except (MllpError, OSError):
                    sender.reset()
                    time.sleep(0.02)
                    continue
                if acked != cid:
                    out.anomalies.append(f"{cid}: ACK for {acked!r}")
                    sender.reset()
                    continue
                if code == "AA":
                    out.aa[patient].append(cid)
                    break
                out.anomalies.append(f"{cid}: {code}")
                time.sleep(0.05)
    finally:
        sender.close()


def _first_arrivals(ids: list[str]) -> tuple[list[str], int]:
    seen: set[str] = set()
    first: list[str] = []
    for cid in ids:
        if cid not in seen:
            seen.add(cid)
            first.append(cid)
    return first, len(ids) - len(first)


@pytest.mark.parametrize(
    ("own_process", "kills"),
    [(False, KILLS), (True, KILLS // 2)],
    ids=["in-process", "own-process"],
)
def test_kill9_while_streaming_loses_nothing_and_keeps_order(tmp_path, own_process, kills):
    """``own-process``: the MLLP listener serves in a process of the engine's own
    (``own_process: true``), which must end by itself when the engine is killed (its
    blocks in hand answered after their commit, or not at all) and free the port for
    the next engine's listener."""
    rng = random.Random(SEED)
    port = listener_port()
    t_start = time.monotonic()
    with MllpPeer() as sink:
        path = fixed_routes(tmp_path, port, sink.port, connections=4)
        if own_process:
            text = path.read_text()
            path.write_text(
                text.replace("    type: mllp\n", "    type: mllp\n    own_process: true\n", 1)
            )
        eng = EaiProcess(path, port, tmp_path / "eai.stderr")
        logs = [SenderLog() for _ in range(SENDERS)]
        stop_new = threading.Event()
        deadline = Deadline(time.monotonic() + OUTER_LIMIT)
        threads = [
            threading.Thread(
                target=_sender, args=(i, port, stop_new, deadline, logs[i]), daemon=True
            )
            for i in range(SENDERS)
        ]
        kill_log: list[str] = []
        try:
            for t in threads:
                t.start()  # they retry until the first engine listens
            for _ in range(kills):
                # Mostly kill a running engine; now and then one still starting up
                # (importing, opening the journal, clearing leases).
                early = rng.random() < 0.2
                if early:
                    eng.spawn()
                else:
                    eng.start()
                time.sleep(rng.uniform(0.05, 0.4))
                acked = sum(len(v) for lg in logs for v in lg.aa.values())
                kill_log.append(f"{'early' if early else 'up'}:{acked}")
                eng.kill9()
            eng.start()  # the last restart: left running until everything is delivered
            kills_done = time.monotonic()
            deadline.at = min(deadline.at, kills_done + ANSWER_TIMEOUT)
            stop_new.set()
            for t in threads:
                t.join(max(1.0, deadline.at - time.monotonic() + 5))
            assert not any(t.is_alive() for t in threads), "a sender is stuck"

            expected = {cid for lg in logs for ids in lg.aa.values() for cid in ids}
            delivered_all = sink.wait_for(lambda s: expected <= set(s.control_ids()), DRAIN_TIMEOUT)
            drained = time.monotonic()
            received = sink.control_ids()
            rc, stop_s = eng.terminate()
        finally:
            stop_new.set()
            eng.close()
            for t in threads:
                t.join(15)

    stderr = eng.stderr()
    # Each start was a fresh process, and each came up without help.
    assert eng.starts == kills + 1
    assert rc == 0, stderr[-3000:]
    for lg in logs:
        assert not lg.anomalies, lg.anomalies
        assert lg.unfinished == "", f"{lg.unfinished} never got AA"
    assert len(expected) >= 100, f"only {len(expected)} messages acknowledged: too little traffic"

    missing = expected - set(received)
    assert delivered_all and not missing, f"{len(missing)} AA'd message(s) lost: {sorted(missing)}"
    assert set(received) <= expected, "the sink got a message that was never acknowledged"

    # Per patient: first arrival order == AA order; a duplicate only repeats a message
    # the sink already had (at-least-once after a crash), never one from the future.
    patient_of = {cid: p for lg in logs for p, ids in lg.aa.items() for cid in ids}
    arrivals: dict[str, list[str]] = {}
    for cid in received:
        arrivals.setdefault(patient_of[cid], []).append(cid)
    duplicates = 0
    for lg in logs:
        for patient, ids in lg.aa.items():
            first, dups = _first_arrivals(arrivals.get(patient, []))
            assert first == ids, f"patient {patient}: delivered {first}, acknowledged {ids}"
            duplicates += dups

    # The journal agrees: nothing left unprocessed, every message delivered.
    rows = journal(path)
    assert {r["control_id"] for r in rows} == expected
    assert journal(path, "--status", "received") == []
    assert all([d["status"] for d in r["deliveries"]] == ["delivered"] for r in rows), [
        r for r in rows if [d["status"] for d in r["deliveries"]] != ["delivered"]
    ][:3]
    res = eai_cli(path, "queue", "list", "--json")
    assert res.returncode == 0, res.stderr
    assert [q["depth"] for q in json.loads(res.stdout)] == [0]

    retransmitted = stderr.count("retransmission of control id")
    print(
        f"\nkill -9: {kills} kills ({', '.join(kill_log)}); {len(expected)} AA'd, "
        f"{len(received)} arrivals, {duplicates} duplicate(s); {retransmitted} resent "
        f"message(s) answered with the stored ACK; "
        f"kills phase {kills_done - t_start:.1f}s, drain {drained - kills_done:.1f}s, "
        f"SIGTERM {stop_s:.1f}s"
    )
