"""The supervision endpoint of a running engine: /metrics after MLLP traffic, /livez, /readyz."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
import time
import urllib.error
import urllib.request

import pytest
from hl7.client import MLLPClient
from prometheus_client.parser import text_string_to_metric_families

from eai.metrics.endpoint import EngineState, Readiness
from standins.mllp import MllpPeer
from tests._mllp import msa
from tests.engine_harness import EngineThread, adt, write_routes

pytestmark = pytest.mark.integration

METRICS = "\nmetrics:\n  bind: 127.0.0.1:0\n  ready_timeout: 1s\n"
PATIENT_ID = "PX77341"
PATIENT_NAME = "ZORGLUBIEN^ANATOLE"


def _get(port: int, path: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers["Content-Type"], exc.read().decode()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _types(text: str) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(text)}


def test_scrape_after_mllp_messages_counts_them_with_no_patient_data(tmp_path):
    with MllpPeer() as sink:
        path = write_routes(tmp_path, sink.port, extra=METRICS)
        with EngineThread(path) as eng:
            assert eng.engine.metrics is not None
            port = eng.engine.metrics.port
            # The counters are the process's: the test reads what its messages added.
            before = _samples(_get(port, "/metrics")[2])
            with MLLPClient("127.0.0.1", eng.port("chu-x-adt")) as c:
                for i in range(5):
                    ack = c.send_message(adt(f"M-{i}", PATIENT_ID, pid_name=PATIENT_NAME))
                    assert msa(ack)[0] == "AA"
                assert msa(c.send_message(adt("M-0", PATIENT_ID, pid_name=PATIENT_NAME)))[0] == (
                    "AA"
                )  # a retransmission
                assert msa(c.send_message(adt("R-1", PATIENT_ID, facility="OTHER")))[0] == "AR"
            assert sink.wait_for(lambda s: len(s.received) == 5, 20)
            status, ctype, text = _get(port, "/metrics")
            for _ in range(50):  # the outcomes are counted after their commit
                key = ("eai_deliveries_total", (("destination", "dcc"), ("outcome", "delivered")))
                if _samples(text)[key] - before.get(key, 0) == 5:
                    break
                status, ctype, text = _get(port, "/metrics")
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    after = _samples(text)
    got = {k: v - before.get(k, 0) if "_total" in k[0] or k[0].endswith("_count") else v
           for k, v in after.items()}  # fmt: skip
    adt_l = (("listener", "chu-x-adt"),)
    assert got[("eai_messages_received_total", adt_l)] == 7
    assert got[("eai_messages_acknowledged_total", adt_l)] == 6
    assert got[("eai_messages_retransmitted_total", adt_l)] == 1
    assert got[("eai_messages_rejected_total", adt_l)] == 1
    assert got[("eai_messages_journal_failed_total", adt_l)] == 0
    assert got[("eai_ack_latency_seconds_count", adt_l)] == 7
    assert got[("eai_deliveries_total", (("destination", "dcc"), ("outcome", "delivered")))] == 5
    assert got[("eai_delivery_latency_seconds_count", (("destination", "dcc"),))] == 5
    assert got[("eai_pipeline_messages_total", (("status", "processed"),))] == 5
    assert got[("eai_journal_commit_latency_seconds_count", ())] >= 1
    assert got[("eai_queue_depth", (("destination", "dcc"), ("status", "pending")))] == 0
    assert got[("eai_dead_letters", (("destination", "dcc"),))] == 0
    assert got[("eai_queue_oldest_age_seconds", (("destination", "dcc"),))] == 0
    assert got[("eai_listener_up", adt_l)] == 1
    assert got[("eai_worker_up", (("worker", "delivery:dcc"),))] == 1
    assert got[("eai_disk_free_bytes", (("volume", "data_dir"),))] > 0
    assert got[("eai_disk_size_bytes", (("volume", "data_dir"),))] > 0
    assert got[("eai_pipeline_backlog", ())] == 0
    build = [k for k in got if k[0] == "eai_build_info"]
    assert build and dict(build[0][1])["version"]
    types = _types(text)
    assert types["eai_messages_received"] == "counter"
    assert types["eai_ack_latency_seconds"] == "histogram"
    assert types["eai_journal_commit_latency_seconds"] == "histogram"
    assert types["eai_queue_depth"] == "gauge"
    assert all(name.startswith("eai_") for name in types)
    # No patient data, no control id: only config names, rule codes and fixed words.
    for secret in (PATIENT_ID, "ZORGLUBIEN", "ANATOLE", "M-0", "R-1", "OTHER"):
        assert secret not in text


def test_readyz_ok_then_503_when_the_journal_cannot_be_written(tmp_path):
    with MllpPeer() as sink:
        path = write_routes(tmp_path, sink.port, extra=METRICS)
        with EngineThread(path) as eng:
            assert eng.engine.metrics is not None and eng.engine.store is not None
            port = eng.engine.metrics.port
            status, ctype, body = _get(port, "/readyz")
            assert (status, ctype) == (200, "application/json"), body
            detail = json.loads(body)
            assert detail["ready"] is True
            assert detail["checks"]["journal"]["ok"] is True
            assert detail["checks"]["listeners"]["running"] == ["chu-x-adt"]
            assert "scheduler" in detail["checks"]["workers"]["running"]
            assert _get(port, "/livez")[:2] == (200, "text/plain; charset=utf-8")
            eng.engine.store.writer.stop()  # the journal's writer is gone
            try:
                status, _, body = _get(port, "/readyz")
                assert status == 503, body
                detail = json.loads(body)
                assert detail["ready"] is False
                assert detail["checks"]["journal"] == {
                    "ok": False,
                    "error": "no journal commit within 1 s",
                }
                assert detail["checks"]["event_loop"]["ok"] is True
                assert _get(port, "/livez")[0] == 200  # alive, not ready
            finally:
                eng.engine.store.writer.start()
            assert _get(port, "/readyz")[0] == 200


def test_unknown_path_and_method(tmp_path):
    with MllpPeer() as sink:
        path = write_routes(tmp_path, sink.port, extra=METRICS)
        with EngineThread(path) as eng:
            assert eng.engine.metrics is not None
            port = eng.engine.metrics.port
            assert _get(port, "/admin")[0] == 404
            req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", method="POST")
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(req, timeout=10)
            with err.value:
                assert err.value.code == 405


def test_no_endpoint_without_a_metrics_block(tmp_path):
    with MllpPeer() as sink:
        path = write_routes(tmp_path, sink.port)
        with EngineThread(path) as eng:
            assert eng.engine.metrics is None


def test_concurrent_readiness_probes_share_one_check_and_none_is_stale():
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    writes: list[float] = []
    failing = threading.Event()

    def journal_write(_timeout: float) -> None:
        writes.append(time.monotonic())
        time.sleep(0.3)
        if failing.is_set():
            raise OSError("disk full")

    state = EngineState(journal_write, loop, lambda: {"adt": True}, lambda: {"pipeline": True})
    ready = Readiness(state, 1.0)
    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: ready(), range(8)))
        assert all(ok for ok, _ in results)
        assert len(writes) <= 3  # 8 probes: the first check, and one for those who waited
        failing.set()
        ok, detail = ready()  # a check that started after the change, not a cached answer
        assert not ok
        assert detail["checks"]["journal"] == {  # type: ignore[index]
            "ok": False,
            "error": "journal write failed: OSError: disk full",
        }
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(5)
        loop.close()
