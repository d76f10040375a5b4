"""The instruments' names, units and labels, and the exposition the endpoint writes."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from eai.metrics import (
    RECEIPT_OUTCOMES,
    destination_meter,
    dicom_meter,
    listener_meter,
    planned,
    receipts_meter,
    registry,
)
from eai.metrics._exposition import exposition


def _value(name: str, **labels: str) -> float:
    got = registry().get_sample_value(name, labels)
    return 0.0 if got is None else got


def test_listener_meter_counts_by_journal_outcome():
    meter = listener_meter("unit-l1")
    assert listener_meter("unit-l1") is meter  # bound once, reused on the hot path
    meter.journaled("received", duplicate=False)
    meter.journaled("received", duplicate=True)
    meter.journaled("rejected", duplicate=False)
    meter.failed()
    meter.ack_seconds.observe(0.002)
    labels = {"listener": "unit-l1"}
    assert _value("eai_messages_received_total", **labels) == 4
    assert _value("eai_messages_acknowledged_total", **labels) == 2
    assert _value("eai_messages_retransmitted_total", **labels) == 1
    assert _value("eai_messages_rejected_total", **labels) == 1
    assert _value("eai_messages_journal_failed_total", **labels) == 1
    assert _value("eai_ack_latency_seconds_bucket", le="0.0025", **labels) == 1
    assert _value("eai_ack_latency_seconds_count", **labels) == 1


def test_destination_meter_counts_attempts_not_untried_rows():
    meter = destination_meter("unit-d1")
    meter.outcomes(["delivered", "delivered", "retrying", "pending", "pending", "dead"])
    for outcome, n in (("delivered", 2), ("retrying", 1), ("dead", 1)):
        assert _value("eai_deliveries_total", destination="unit-d1", outcome=outcome) == n
    assert _value("eai_deliveries_total", destination="unit-d1", outcome="pending") == 0


def test_dicom_meter_by_status_word():
    meter = dicom_meter("unit-scp")
    meter.answered(0x0000, 1000)
    meter.answered(0xA700, 500)
    meter.answered(0xA702, 500)
    meter.answered(0xC000, 500)
    got = {
        o: _value("eai_dicom_instances_total", listener="unit-scp", outcome=o)
        for o in ("stored", "refused", "rejected")
    }
    assert got == {"stored": 1, "refused": 2, "rejected": 1}
    assert _value("eai_dicom_received_bytes_total", listener="unit-scp") == 1000


def test_pipeline_statuses_and_anomalies_per_rule():
    before = _value("eai_identity_anomalies_total", rule="UNIT-RULE", severity="hold")
    planned(["processed", "rejected"], [("UNIT-RULE", "hold"), ("UNIT-RULE", "hold")])
    assert _value("eai_identity_anomalies_total", rule="UNIT-RULE", severity="hold") == before + 2


def test_receipts_meter_exports_every_outcome_and_refuses_others():
    meter = receipts_meter("unit-r1")
    assert receipts_meter("unit-r1") is meter
    meter.count("journaled")
    meter.count("quarantined_unknown")
    meter.count("quarantined_unknown")
    with pytest.raises(ValueError, match="unknown receipt outcome"):
        meter.count("EaiUnknown")  # a keyword, not an outcome: never a free label value
    for outcome in RECEIPT_OUTCOMES:
        got = registry().get_sample_value(
            "eai_mssante_receipts_total", {"listener": "unit-r1", "outcome": outcome}
        )
        assert got == {"journaled": 1, "quarantined_unknown": 2}.get(outcome, 0)


def test_every_name_is_prefixed_with_a_unit_and_counters_end_in_total():
    text = exposition(registry().collect()).decode()
    families = list(text_string_to_metric_families(text))
    assert families
    for family in families:
        assert family.name.startswith("eai_"), family.name
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name
    assert "_created" not in text
    assert "eai_build_info{" in text
    counters = [
        line for line in text.splitlines() if line.startswith("# TYPE") and "counter" in line
    ]
    assert counters and all(line.split()[2].endswith("_total") for line in counters)


def test_exposition_is_generate_latest_without_created_series():
    registry = CollectorRegistry()
    c = Counter("x_things", "things\nwith a \\ newline", ["name"], registry=registry)
    c.labels('odd "name"\\\n').inc(3)
    g = Gauge("x_level", "level", registry=registry)
    g.set(math.inf)
    h = Histogram("x_seconds", "time", buckets=(0.1, 1.0), registry=registry)
    h.observe(0.5)
    Gauge("x_nan", "nan", registry=registry).set(math.nan)
    reference = [
        line for line in generate_latest(registry).decode().splitlines() if "_created" not in line
    ]
    assert exposition(registry.collect()).decode().splitlines() == reference
