"""Logs an operator can filter: delivery failures WARNING, dead letters ERROR, the
scheduler's routine lines DEBUG, anomalies not mailable said once at start-up."""

from __future__ import annotations

import logging
import re
import socket
import time
from collections.abc import Callable

import pytest
from hl7.client import MLLPClient

from standins.mllp import MllpPeer, ack_for
from tests._mllp import msa
from tests.engine_harness import EngineThread, adt, write_routes

pytestmark = pytest.mark.integration

NEXT_RETRY = re.compile(r"next retry at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(caplog: pytest.LogCaptureFixture, found: Callable[[logging.LogRecord], bool]) -> None:
    deadline = time.monotonic() + 15
    while not any(found(r) for r in list(caplog.records)):
        assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
        time.sleep(0.05)


def _send(eng: EngineThread, cid: str) -> None:
    with MLLPClient("127.0.0.1", eng.port("chu-x-adt")) as c:
        assert msa(c.send_message(adt(cid, "P1")))[0] == "AA"


def _delivery(record: logging.LogRecord) -> bool:
    return record.name == "eai.delivery"


def test_refused_connection_is_a_warning_with_destination_and_next_retry(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    path = write_routes(tmp_path, _closed_port())
    with EngineThread(path) as eng:
        _send(eng, "REFUSED-1")
        _wait(caplog, _delivery)
    failure = next(r for r in caplog.records if _delivery(r))
    assert failure.levelno == logging.WARNING
    text = failure.getMessage()
    assert "to dcc failed (attempt 1)" in text and "cannot connect" in text
    assert NEXT_RETRY.search(text), text


@pytest.mark.parametrize(
    ("code", "level", "said"),
    [
        ("AE", logging.WARNING, "next retry at"),
        ("AR", logging.ERROR, "dead-lettered"),
    ],
)
def test_negative_ack_levels(tmp_path, caplog, code, level, said):
    caplog.set_level(logging.INFO)
    with MllpPeer(answer=lambda p: ack_for(p, code)) as sink:
        path = write_routes(tmp_path, sink.port)
        with EngineThread(path) as eng:
            _send(eng, f"NACK-{code}")
            _wait(caplog, _delivery)
    failure = next(r for r in caplog.records if _delivery(r))
    assert failure.levelno == level
    assert said in failure.getMessage() and "to dcc" in failure.getMessage()
    assert f"answered {code}" in failure.getMessage()


def test_too_many_attempts_is_an_error(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    path = write_routes(tmp_path, _closed_port(), max_attempts=1)
    with EngineThread(path) as eng:
        _send(eng, "GIVE-UP")
        _wait(caplog, _delivery)
    failure = next(r for r in caplog.records if _delivery(r))
    assert failure.levelno == logging.ERROR
    assert "dead-lettered after 1 attempts" in failure.getMessage()


DIGEST_OFTEN = "identity:\n  digest_every: 0.2s\n"


def _scheduler(record: logging.LogRecord) -> bool:
    return record.name.startswith("apscheduler")


def _runs(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return [r for r in records if _scheduler(r) and "executed successfully" in r.getMessage()]


def test_scheduler_runs_are_not_info(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    path = write_routes(tmp_path, _closed_port(), extra=DIGEST_OFTEN)
    with EngineThread(path):
        time.sleep(1.0)  # about five digest runs
    assert [r.getMessage() for r in caplog.records if _scheduler(r)] == []


def test_scheduler_runs_are_debug_when_asked(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    path = write_routes(tmp_path, _closed_port(), extra=DIGEST_OFTEN)
    with EngineThread(path):
        deadline = time.monotonic() + 15
        while not _runs(caplog.records):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert {r.levelno for r in caplog.records if _scheduler(r)} == {logging.DEBUG}


def test_anomalies_not_mailable_said_once_at_start(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    path = write_routes(tmp_path, _closed_port(), extra=DIGEST_OFTEN)
    with EngineThread(path):
        time.sleep(0.7)  # digests run, and say nothing more
    said = [r for r in caplog.records if "anomalies will be stored, not mailed" in r.getMessage()]
    assert len(said) == 1
    assert said[0].levelno == logging.WARNING and said[0].name == "eai.anomaly_mail"
