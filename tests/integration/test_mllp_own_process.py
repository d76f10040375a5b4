"""An MLLP listener with ``own_process: true``: same answers, same journal, its own process.

The engine runs in a thread of the test (``EngineThread``), its listener in a process it
spawns; real sockets on 127.0.0.1, the journal on the test database, a real MLLP sink
as the destination. What the listener's process journals must reach the engine's
meters, its logs and its pipeline exactly as an in-process listener's would.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from connectors.mllp.own_process import OwnProcessListener
from eai.metrics import registry
from standins.mllp import MllpPeer
from tests._mllp import MllpSender, err_code, msa
from tests._proc import journal
from tests._readyz import readyz
from tests.engine_harness import EngineThread, adt, write_routes

LISTENER = "chu-x-adt"
SENDERS = 4
PER_SENDER = 30


def own_process_routes(tmp_path: Path, sink_port: int) -> Path:
    path = write_routes(tmp_path, sink_port)
    text = path.read_text()
    assert "    type: mllp\n    bind: 127.0.0.1:0\n" in text
    path.write_text(
        text.replace(
            "    type: mllp\n    bind: 127.0.0.1:0\n",
            "    type: mllp\n    own_process: true\n    bind: 127.0.0.1:0\n",
            1,
        )
    )
    return path


def _metric(name: str) -> float:
    return registry().get_sample_value(name, {"listener": LISTENER}) or 0.0


def _send(port: int, index: int, out: dict[str, tuple[str, str]]) -> None:
    with MllpSender(port) as sender:
        for n in range(PER_SENDER):
            cid = f"OP{index}-{n:03d}"
            out[cid] = msa(sender.exchange(adt(cid, f"OWN{index}")))


def test_answers_journals_and_delivers_from_its_own_process(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    before = {
        n: _metric(n)
        for n in (
            "eai_messages_received_total",
            "eai_messages_acknowledged_total",
            "eai_messages_rejected_total",
            "eai_messages_retransmitted_total",
            "eai_ack_latency_seconds_count",
        )
    }
    with MllpPeer() as sink:
        path = own_process_routes(tmp_path, sink.port)
        with EngineThread(path) as eng:
            listener = eng.engine.listeners[LISTENER]
            assert isinstance(listener, OwnProcessListener)
            assert listener.pid is not None and listener.pid != os.getpid()
            port = eng.port(LISTENER)

            answers: dict[str, tuple[str, str]] = {}
            threads = [
                threading.Thread(target=_send, args=(port, i, answers)) for i in range(SENDERS)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert len(answers) == SENDERS * PER_SENDER
            assert all(code == "AA" and acked == cid for cid, (code, acked) in answers.items())

            with MllpSender(port) as sender:
                # a retransmission gets the stored ACK, byte for byte
                first = sender.exchange(adt("OP-RESENT", "OWN9"))
                assert sender.exchange(adt("OP-RESENT", "OWN9")) == first
                # a block that is no HL7 message: AR with an ERR, and kept
                bad = sender.exchange(b"this is not HL7")
                assert msa(bad)[0] == "AR" and err_code(bad)
                # a sender outside allowed_senders: AR, kept
                other = sender.exchange(adt("OP-OTHER", "OWN9", facility="CHU-Z"))
                assert msa(other)[0] == "AR"

            expected = set(answers) | {"OP-RESENT"}
            assert sink.wait_for(lambda s: expected <= set(s.control_ids()), 60)
            pid = listener.pid

    # the engine's meters counted what the listener's process journaled and answered
    assert _metric("eai_messages_received_total") - before["eai_messages_received_total"] == (
        len(expected) + 3
    )
    assert (
        _metric("eai_messages_acknowledged_total") - before["eai_messages_acknowledged_total"]
        == len(expected) + 1
    )
    assert _metric("eai_messages_rejected_total") - before["eai_messages_rejected_total"] == 2
    assert (
        _metric("eai_messages_retransmitted_total") - before["eai_messages_retransmitted_total"]
        == 1
    )
    assert (
        _metric("eai_ack_latency_seconds_count") - before["eai_ack_latency_seconds_count"]
        == len(expected) + 3
    )
    # its log records went through the engine's loggers
    messages = [r.getMessage() for r in caplog.records]
    assert any(f"in process {pid}" in m for m in messages)
    assert any("retransmission of control id OP-RESENT" in m for m in messages)
    assert any("rejected control id" in m and "not allowed" in m for m in messages)
    assert any("its process journaled" in m for m in messages)
    # and the journal holds everything, the rejected blocks included, nothing pending
    rows = journal(path)
    by_status: dict[str, int] = {}
    for row in rows:
        by_status[row["status"]] = by_status.get(row["status"], 0) + 1
    assert by_status == {"processed": len(expected), "rejected": 2}, by_status
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the engine's stop ended the listener's process


def test_a_port_taken_fails_the_start_with_the_reason(tmp_path: Path) -> None:
    with MllpPeer() as sink, MllpPeer() as squatter:
        path = own_process_routes(tmp_path, sink.port)
        path.write_text(
            path.read_text().replace("bind: 127.0.0.1:0", f"bind: 127.0.0.1:{squatter.port}")
        )
        engine = EngineThread(path).engine
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{squatter.port}"):
            asyncio.run(engine.run(asyncio.Event()))


def test_readyz_says_the_listener_is_down_until_its_process_is_replaced(tmp_path: Path) -> None:
    with MllpPeer() as sink:
        path = own_process_routes(tmp_path, sink.port)
        path.write_text(path.read_text() + "\nmetrics:\n  bind: 127.0.0.1:0\n  ready_timeout: 2s\n")
        with EngineThread(path) as eng:
            assert eng.engine.metrics is not None
            metrics = eng.engine.metrics.port
            listener = eng.engine.listeners[LISTENER]
            assert isinstance(listener, OwnProcessListener)
            status, body = readyz(metrics)
            assert status == 200, body
            pid = listener.pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while (answer := readyz(metrics))[0] == 200:  # the death is seen at once...
                assert time.monotonic() < deadline, "readyz never said the listener is down"
                time.sleep(0.01)
            status, body = answer
            checks = body["checks"]
            assert isinstance(checks, dict)
            assert status == 503 and checks["listeners"]["down"] == [LISTENER], body
            while listener.pid is None:  # ...and the new process listens 0.5 s later
                assert time.monotonic() < deadline, "no new listener process"
                time.sleep(0.02)
            assert listener.pid != pid
            assert readyz(metrics)[0] == 200
            with MllpSender(eng.port(LISTENER)) as sender:
                assert msa(sender.exchange(adt("OP-AFTER", "OWN8")))[0] == "AA"
            assert sink.wait_for(lambda s: "OP-AFTER" in s.control_ids(), 30)


@pytest.mark.sqlite_only  # the failure is made with an SQLite trigger
def test_a_journal_failure_in_its_process_is_answered_ae_and_counted_by_the_engine(
    tmp_path: Path,
) -> None:
    failed_before = (
        registry().get_sample_value("eai_messages_journal_failed_total", {"listener": LISTENER})
        or 0.0
    )
    with MllpPeer() as sink:
        path = own_process_routes(tmp_path, sink.port)
        with EngineThread(path) as eng:
            db = sqlite3.connect(tmp_path / "var" / "eai.db", timeout=10)
            with db:
                db.execute(
                    "CREATE TRIGGER refuse_one BEFORE INSERT ON messages "
                    "WHEN NEW.control_id = 'OP-FAIL' BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            db.close()
            with MllpSender(eng.port(LISTENER)) as sender:
                nack = sender.exchange(adt("OP-FAIL", "OWN7"))
                assert msa(nack) == ("AE", "OP-FAIL") and err_code(nack) == "207"
                assert msa(sender.exchange(adt("OP-OK", "OWN7")))[0] == "AA"
            assert sink.wait_for(lambda s: "OP-OK" in s.control_ids(), 30)
            deadline = time.monotonic() + 10
            while eng.engine.signals.journal_failures(3600)[0] < 1:  # reported within ms
                assert time.monotonic() < deadline, "the engine never heard of the failure"
                time.sleep(0.01)
    failed = registry().get_sample_value(
        "eai_messages_journal_failed_total", {"listener": LISTENER}
    )
    assert failed == failed_before + 1


def test_a_process_that_cannot_be_started_fails_the_start_and_leaks_no_pipe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import multiprocessing

    from connectors.mllp import own_process
    from connectors.mllp.listener import MllpListenerConfig

    pipes: list[tuple[object, object]] = []
    real = multiprocessing.get_context("spawn")

    class _Refused:
        def __init__(self, **_: object) -> None:
            pass

        def start(self) -> None:
            raise OSError(11, "Resource temporarily unavailable")

    class _Context:
        def Pipe(self) -> tuple[object, object]:  # noqa: N802 - multiprocessing's name
            pair = real.Pipe()
            pipes.append(pair)
            return pair

        Process = _Refused

    class _Host:
        def journal_access(self) -> object:
            return object()

    monkeypatch.setattr(own_process, "_SPAWN", _Context())
    config = MllpListenerConfig(name="refused", bind="127.0.0.1:0", own_process=True)
    listener = own_process.OwnProcessListener(config, _Host())  # type: ignore[arg-type]
    with pytest.raises(OSError, match="temporarily unavailable"):
        asyncio.run(listener.start())
    [(ours, theirs)] = pipes
    assert ours.closed and theirs.closed  # type: ignore[attr-defined]
    assert listener.pid is None and not listener.serving
