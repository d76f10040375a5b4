"""The downstream peer misbehaves: silent, late, AE, AR, down. Nothing is lost or misread.

Each test runs ``eai run`` as a subprocess against a sink in the test process, with a
short ``ack_timeout`` and fast retries (tests.engine_harness.ROUTES: 0.05 s to 0.5 s).
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from standins.mllp import MllpPeer, ack_for, msh10
from tests._mllp import EB, SB, MllpSender, msa
from tests._proc import (
    EaiProcess,
    by_control_id,
    eai_cli,
    fixed_routes,
    journal,
    listener_port,
)
from tests.engine_harness import adt

pytestmark = pytest.mark.fault

ACK_TIMEOUT = 0.3


@contextmanager
def _engine(tmp: Path, dcc_port: int, **kw: object) -> Iterator[EaiProcess]:
    port = listener_port()
    path = fixed_routes(tmp, port, dcc_port, **kw)
    eng = EaiProcess(path, port, tmp / "eai.stderr")
    try:
        yield eng.start()
        rc, _ = eng.terminate()
        assert rc == 0, eng.stderr()[-2000:]
    finally:
        eng.close()


def _send_all(port: int, messages: list[tuple[str, str]]) -> None:
    """Send (control id, patient) pairs in order; each must get AA."""
    with MllpSender(port) as s:
        for cid, patient in messages:
            assert msa(s.exchange(adt(cid, patient))) == ("AA", cid)


def _assert_order(arrivals: list[str], messages: list[tuple[str, str]]) -> None:
    """Per patient, the first arrival of each message follows the sending order."""
    for patient in {p for _, p in messages}:
        mine = [c for c, p in messages if p == patient]
        firsts = list(dict.fromkeys(c for c in arrivals if c in set(mine)))
        assert firsts == mine, f"patient {patient}: {firsts}"


def test_silent_peer_then_answering_loses_nothing_keeps_order(tmp_path):
    answering = threading.Event()

    def answer(payload: bytes) -> bytes | None:
        return ack_for(payload) if answering.is_set() else None

    messages = [(f"S{i:02d}", f"SIL{i % 3}") for i in range(12)]
    with MllpPeer(answer) as sink, _engine(tmp_path, sink.port, ack_timeout="0.3s") as eng:
        _send_all(eng.port, messages)
        assert sink.wait_for(lambda p: len(p.received) >= 6, 10)  # several timed-out attempts
        time.sleep(1.0)
        answering.set()
        want = {c for c, _ in messages}
        assert sink.wait_for(lambda p: want <= set(p.control_ids()), 20)
        time.sleep(0.3)  # let the outcomes be recorded
    arrivals = sink.control_ids()
    _assert_order(arrivals, messages)
    rows = by_control_id(journal(eng.config))
    assert {c: r["deliveries"][0]["status"] for c, r in rows.items()} == dict.fromkeys(
        want, "delivered"
    )
    assert max(r["deliveries"][0]["attempts"] for r in rows.values()) > 1
    assert "no ACK for control id" in "".join(e["detail"] for e in _events(eng, rows["S00"]["id"]))


def _delivery(eng: EaiProcess, cid: str) -> dict[str, Any]:
    """The (only) delivery of message ``cid``, as ``eai messages list --json`` shows it."""
    delivery: dict[str, Any] = by_control_id(journal(eng.config))[cid]["deliveries"][0]
    return delivery


def _events(eng: EaiProcess, message_id: int) -> list[dict[str, str]]:
    res = eai_cli(eng.config, "messages", "show", str(message_id), "--json")
    assert res.returncode == 0, res.stderr
    events: list[dict[str, str]] = json.loads(res.stdout)["events"]
    return events


class LateSink:
    """A sink that answers the FIRST attempt of each message after ``delay`` seconds.

    Later attempts are answered at once. For each late answer it records whether the
    engine had already closed the connection, and whether the engine had sent more
    bytes on that connection while our answer was pending (it must not: one message
    at a time, and a timed-out connection is never reused).
    """

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.attempts: Counter[str] = Counter()
        self.arrivals: list[str] = []
        self.late: dict[str, tuple[bool, bool]] = {}  # cid -> (closed before, sent more)
        self._lock = threading.Lock()
        self._srv = socket.create_server(("127.0.0.1", 0))
        self._srv.settimeout(0.2)
        self.port: int = self._srv.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> LateSink:
        self._acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._acceptor.join(5)
        for t in self._threads:
            t.join(5)
        self._srv.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            conn.settimeout(0.2)
            while not self._stop.is_set():
                if EB not in buf:
                    try:
                        chunk = conn.recv(65536)
                    except TimeoutError:
                        continue
                    except OSError:
                        return
                    if not chunk:
                        return
                    buf += chunk
                    continue
                block, _, buf = buf.partition(EB)
                payload = block[block.find(SB) + 1 :]
                cid = msh10(payload)
                with self._lock:
                    self.attempts[cid] += 1
                    self.arrivals.append(cid)
                    first = self.attempts[cid] == 1
                if first:
                    time.sleep(self.delay)
                    closed, more = self._peer_state(conn, buf)
                    with self._lock:
                        self.late[cid] = (closed, more)
                try:
                    conn.sendall(SB + ack_for(payload) + EB)
                except OSError:
                    return

    def answered_all(self, cids: set[str]) -> bool:
        """Each of ``cids`` got its late answer and was sent again."""
        with self._lock:
            return cids <= set(self.late) and all(self.attempts[c] >= 2 for c in cids)

    @staticmethod
    def _peer_state(conn: socket.socket, buf: bytes) -> tuple[bool, bool]:
        """(the peer closed the connection, the peer sent more data) right now."""
        more = bool(buf)
        readable, _, _ = select.select([conn], [], [], 0)
        if not readable:
            return False, more
        try:
            data = conn.recv(65536, socket.MSG_PEEK)
        except OSError:
            return True, more
        if not data:
            return True, more
        return False, True


def test_late_ack_is_never_taken_for_the_next_message(tmp_path):
    messages = [(f"L{i:02d}", f"LATE{i % 2}") for i in range(8)]
    with LateSink(delay=2 * ACK_TIMEOUT) as sink:
        with _engine(tmp_path, sink.port, ack_timeout=f"{ACK_TIMEOUT}s") as eng:
            _send_all(eng.port, messages)
            want = {c for c, _ in messages}
            deadline = time.monotonic() + 30
            while not sink.answered_all(want) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)  # let the outcomes be recorded
        rows = by_control_id(journal(eng.config))
    # Every first attempt got its answer late, on a connection the engine had closed
    # after ack_timeout without sending anything else on it.
    assert set(sink.late) == want
    assert all(sink.late[c] == (True, False) for c in want), sink.late
    _assert_order(sink.arrivals, messages)
    for cid in want:
        d = rows[cid]["deliveries"][0]
        assert d["status"] == "delivered", (cid, d)
        assert d["attempts"] == sink.attempts[cid] >= 2, (cid, d, sink.attempts[cid])


def test_ae_three_times_then_aa_and_ar_dead_letters_without_blocking(tmp_path):
    seen: Counter[str] = Counter()

    def answer(payload: bytes) -> bytes:
        cid = msh10(payload)
        seen[cid] += 1
        if cid == "E1" and seen[cid] <= 3:
            return ack_for(payload, "AE")
        if cid == "R1":
            return ack_for(payload, "AR")
        return ack_for(payload, "AA")

    messages = [("E1", "AE-PAT"), ("E2", "AE-PAT"), ("R0", "AR-PAT"), ("R1", "AR-PAT")]
    messages.append(("R2", "AR-PAT"))
    with MllpPeer(answer) as sink, _engine(tmp_path, sink.port) as eng:
        _send_all(eng.port, messages)
        assert sink.wait_for(lambda p: Counter(p.control_ids())["E2"] == 1, 15)
        assert sink.wait_for(lambda p: "R2" in p.control_ids(), 15)
        time.sleep(0.3)
    arrivals = sink.control_ids()
    assert [c for c in arrivals if c.startswith("E")] == ["E1"] * 4 + ["E2"]
    assert [c for c in arrivals if c.startswith("R")] == ["R0", "R1", "R2"]
    rows = by_control_id(journal(eng.config))
    got = {
        c: (r["deliveries"][0]["status"], r["deliveries"][0]["attempts"]) for c, r in rows.items()
    }
    assert got == {
        "E1": ("delivered", 4),
        "E2": ("delivered", 1),
        "R0": ("delivered", 1),
        "R1": ("dead", 1),
        "R2": ("delivered", 1),
    }


def test_max_attempts_dead_letters_and_the_chain_goes_on(tmp_path):
    dcc_port = listener_port()  # nothing listens there yet: connection refused
    with _engine(tmp_path, dcc_port, max_attempts=2) as eng:
        _send_all(eng.port, [("M1", "MAX-PAT")])
        deadline = time.monotonic() + 15
        while _delivery(eng, "M1")["status"] != "dead" and time.monotonic() < deadline:
            time.sleep(0.2)
        m1 = _delivery(eng, "M1")
        assert (m1["status"], m1["attempts"]) == ("dead", 2)
        assert m1["last_error"].startswith("gave up after 2 attempts"), m1
        with MllpPeer(port=dcc_port) as sink:
            _send_all(eng.port, [("M2", "MAX-PAT")])
            assert sink.wait_for(lambda p: p.control_ids() == ["M2"], 15)
            time.sleep(0.3)
        rows = by_control_id(journal(eng.config))
    assert (rows["M1"]["deliveries"][0]["status"], rows["M1"]["deliveries"][0]["attempts"]) == (
        "dead",
        2,
    )
    m2 = rows["M2"]["deliveries"][0]
    assert (m2["status"], m2["attempts"]) == ("delivered", 1)
