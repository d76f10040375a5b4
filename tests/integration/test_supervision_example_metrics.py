"""examples/supervision-routes.yaml as shipped, run by `eai run` with METRICS_PORT set: its
/metrics, /livez and /readyz answer, and the failing DCC shows in the queue gauges and in
eai_alerts_firing."""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from standins.net import free_port
from tests._mllp import MllpSender, msa
from tests._paths import REPO
from tests._proc import EaiProcess, listener_port
from tests._smtp import smtp_server
from tests.engine_harness import adt

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

EXAMPLE = REPO / "examples" / "supervision-routes.yaml"


def _get(port: int, path: str) -> tuple[int, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return r.status, r.read().decode()


def _sample(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return None


def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.3)
    return predicate()


def test_the_supervision_example_serves_metrics_and_health(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port, dcc_port, metrics_port = listener_port(), free_port(), free_port()
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "supervision-routes.yaml"
    shutil.copy(EXAMPLE, config)
    with smtp_server() as inbox:
        for name, value in {
            "ADT_PORT": str(port),
            "CONSOLE_PORT": str(free_port()),  # the example serves the console too
            "DCC_PORT": str(dcc_port),  # nothing listens there: dcc fails
            "SMTP_PORT": str(inbox.port),
            "ALERT_AFTER": "2s",
            "METRICS_PORT": str(metrics_port),
        }.items():
            monkeypatch.setenv(name, value)
        with EaiProcess(config, port, tmp_path / "eai.log") as eng:
            eng.start()  # the listener is bound; the endpoint comes a moment later

            def live() -> bool:
                try:
                    return _get(metrics_port, "/livez") == (200, "ok\n")
                except OSError:
                    return False

            assert _wait(live, 20), eng.stderr()[-3000:]
            status, body = _get(metrics_port, "/readyz")
            assert status == 200, body
            assert json.loads(body)["checks"]["listeners"]["running"] == ["chu-x-adt"]
            with MllpSender(port) as sender:
                for i in range(3):
                    assert msa(sender.exchange(adt(f"X{i}", patient=f"{i:06d}")))[0] == "AA"

            def firing() -> bool:
                text = _get(metrics_port, "/metrics")[1]
                return _sample(text, "eai_alerts_firing", rule="destination_failing") == 1

            assert _wait(firing, 60), eng.stderr()[-3000:]
            text = _get(metrics_port, "/metrics")[1]
    assert _sample(text, "eai_messages_received_total", listener="chu-x-adt") == 3
    assert _sample(text, "eai_messages_acknowledged_total", listener="chu-x-adt") == 3
    waiting = sum(
        _sample(text, "eai_queue_depth", destination="dcc", status=s) or 0
        for s in ("pending", "retrying")
    )
    assert waiting == 3
    assert (_sample(text, "eai_queue_oldest_age_seconds", destination="dcc") or 0) > 0
    assert (_sample(text, "eai_deliveries_total", destination="dcc", outcome="retrying") or 0) >= 1
    assert _sample(text, "eai_alerts_firing", rule="queue_age") == 0
