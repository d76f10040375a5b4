"""The Prometheus rules and the Grafana dashboard of examples/ against the real exposition,
checked with promtool (Debian's prometheus package): syntax, what fires when, lint."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from eai.config import MetricsConfig, load_config_text
from eai.metrics import destination_meter, dicom_meter, listener_meter
from eai.metrics.endpoint import EngineState, MetricsEndpoint
from eai.store import Store
from tests._database import database_url

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RULES = EXAMPLES / "prometheus-alerts.yml"
DASHBOARD = EXAMPLES / "grafana-dashboard.json"
_NAME = re.compile(r"\beai_[a-z_]+")


def _promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["promtool", *args], input=stdin, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def scrape(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A scrape of an endpoint over a real (empty) journal, every family present."""
    tmp = tmp_path_factory.mktemp("scrape")
    store = Store(database_url(tmp / "eai.db"), tmp, os.urandom(32).hex())
    config = load_config_text(
        f"engine: {{data_dir: {tmp}}}\n"
        "listeners: [{name: adt, type: mllp, bind: 127.0.0.1:0}]\n"
        "destinations: [{name: dcc, type: mllp, host: 127.0.0.1, port: 9}]\n",
        env={},
    )
    listener_meter("adt")
    destination_meter("dcc")
    dicom_meter("scp")
    loop = asyncio.new_event_loop()
    state = EngineState(
        journal_write=lambda _t: None,
        loop=loop,
        listeners=lambda: {"adt": True},
        workers=lambda: {"pipeline": True},
        identity_server=lambda: True,
    )
    endpoint = MetricsEndpoint(MetricsConfig(bind="127.0.0.1:0"), config, store.engine, state)
    try:
        endpoint.start()  # its refresher reads the journal's gauges at once
        for _ in range(200):  # bounded: 10 s
            text = endpoint.scrape().decode()
            if "eai_queue_depth{" in text:
                return text
            time.sleep(0.05)
        raise AssertionError("no journal gauges 10 s after start")
    finally:
        endpoint.stop()
        store.close()
        loop.close()


def _exposed(text: str) -> set[str]:
    """Every series name a query may use: families, with histograms' and counters' suffixes."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names.add(name)
            if kind == "histogram":
                names.update(name + s for s in ("_bucket", "_count", "_sum"))
    return names


def _rule_exprs() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dash["panels"] for t in p["targets"]]


def test_the_exposition_passes_promtool_lint(scrape: str) -> None:
    done = _promtool("check", "metrics", stdin=scrape.encode())
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert "eai_certificate_expiry_timestamp_seconds" in scrape
    assert "eai_identity_server_up 1.0" in scrape


def test_the_rules_pass_promtool_check() -> None:
    done = _promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert b"SUCCESS: 12 rules found" in done.stdout


@pytest.mark.parametrize("where", ["rules", "dashboard"])
def test_examples_query_only_exposed_series(scrape: str, where: str) -> None:
    exprs = _rule_exprs() if where == "rules" else _dashboard_exprs()
    used = {name for expr in exprs for name in _NAME.findall(expr)}
    assert len(used) >= 10
    assert used <= _exposed(scrape), used - _exposed(scrape)


def test_dashboard_shape() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["__inputs"][0]["name"] == "DS_PROMETHEUS"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dash["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}"
        assert all('instance=~"$instance"' in t["expr"] for t in panel["targets"])


_SERIES = 'instance="e", job="eai"'
_CERT = 'owner="listener", name="adt", field="tls.cert"'
_FAILING = "aucun envoi réussi depuis 5 minutes alors que des messages attendent ; eai queue list"
_TESTS = f"""
rule_files: [{RULES}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # dcc: nothing delivered while 20 wait; dmp delivers while its queue is not empty
      - series: 'eai_deliveries_total{{{_SERIES}, destination="dcc", outcome="delivered"}}'
        values: '7x40'
      - series: 'eai_queue_depth{{{_SERIES}, destination="dcc", status="pending"}}'
        values: '20x40'
      - series: 'eai_deliveries_total{{{_SERIES}, destination="dmp", outcome="delivered"}}'
        values: '0+5x40'
      - series: 'eai_queue_depth{{{_SERIES}, destination="dmp", status="pending"}}'
        values: '3x40'
      - series: 'eai_queue_oldest_age_seconds{{{_SERIES}, destination="dcc"}}'
        values: '0+60x40'
      - series: 'eai_messages_rejected_total{{{_SERIES}, listener="adt"}}'
        values: '0+2x40'
      - series: 'eai_disk_free_bytes{{{_SERIES}, volume="data_dir"}}'
        values: '5x40'
      - series: 'eai_disk_size_bytes{{{_SERIES}, volume="data_dir"}}'
        values: '100x40'
      - series: 'eai_certificate_expiry_timestamp_seconds{{{_SERIES}, {_CERT}}}'
        values: '864000x40'
    alert_rule_test:
      - eval_time: 4m
        alertname: EaiDestinationFailing
        exp_alerts: []
      - eval_time: 6m
        alertname: EaiDestinationFailing
        exp_alerts:
          - exp_labels: {{severity: critical, instance: e, destination: dcc}}
            exp_annotations:
              summary: destination dcc en échec
              description: "{_FAILING}"
      - eval_time: 30m
        alertname: EaiQueueAge
        exp_alerts: []
      - eval_time: 31m
        alertname: EaiQueueAge
        exp_alerts:
          - exp_labels: {{severity: warning, instance: e, job: eai, destination: dcc}}
            exp_annotations:
              summary: "file d'attente de dcc en retard"
              description: "le plus ancien envoi attend depuis 31m 0s ; eai queue list"
      - eval_time: 4m
        alertname: EaiRejectedMessages
        exp_alerts: []
      - eval_time: 6m
        alertname: EaiRejectedMessages
        exp_alerts:
          - exp_labels: {{severity: warning, instance: e, listener: adt}}
            exp_annotations:
              summary: messages rejetés sur adt
              description: eai messages list --status rejected --listener adt --since 1h
      - eval_time: 1m
        alertname: EaiDiskAlmostFull
        exp_alerts:
          - exp_labels: {{severity: warning, instance: e, job: eai, volume: data_dir}}
            exp_annotations:
              summary: disque presque plein (data_dir)
              description: 95 % utilisés
      - eval_time: 1m
        alertname: EaiCertificateExpiring
        exp_alerts:
          - exp_labels:
              severity: warning
              instance: e
              job: eai
              owner: listener
              name: adt
              field: tls.cert
            exp_annotations:
              summary: certificat de adt (tls.cert) bientôt expiré
              description: expire dans 9d 23h 59m 0s ; eai check
      - eval_time: 10m
        alertname: EaiDeadLetters
        exp_alerts: []
"""


def test_the_rules_fire_as_the_builtin_alerts(tmp_path: Path) -> None:
    """promtool's rule unit tests: each alert fires when its built-in twin would, and not
    before (a failing destination after 5 minutes without success, not a busy one)."""
    tests = tmp_path / "eai-alerts.test.yml"
    tests.write_text(_TESTS)
    done = _promtool("test", "rules", str(tests))
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
