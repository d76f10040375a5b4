"""The engine's metric families, on one registry of its own (prometheus_client objects).

Touches: nothing (memory only).

Built once per process by :func:`eai.metrics._instruments.families`, at the first
count: importing :mod:`eai.metrics` costs nothing, so a CLI command that reads the
config (and so imports the plugins) does not load prometheus_client.
"""

from __future__ import annotations

import platform

from prometheus_client import CollectorRegistry, Counter, Histogram, Info

import eai

__all__ = ["Families"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_COMMIT_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
_SEND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Families:
    """Every family of the engine's instruments, on ``registry`` (never prometheus_client's
    global default one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.build = Info("eai_build", "version of the running engine", registry=self.registry)
        self.build.info({"version": eai.__version__, "python": platform.python_version()})

        self.received = Counter(
            "eai_messages_received",
            "messages (and DICOM instances) handed to the journal by a listener",
            ["listener"],
            registry=self.registry,
        )
        self.acknowledged = Counter(
            "eai_messages_acknowledged",
            "messages acknowledged positively after their durable commit "
            "(retransmissions included)",
            ["listener"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "eai_messages_rejected",
            "messages journaled as rejected (answered AR, or a DICOM failure status)",
            ["listener"],
            registry=self.registry,
        )
        self.journal_failed = Counter(
            "eai_messages_journal_failed",
            "messages the journal could not commit (answered AE/CE, or DICOM 0xA700)",
            ["listener"],
            registry=self.registry,
        )
        self.retransmitted = Counter(
            "eai_messages_retransmitted",
            "retransmissions recognised by the journal (answered with the stored ACK)",
            ["listener"],
            registry=self.registry,
        )
        self.ack_seconds = Histogram(
            "eai_ack_latency_seconds",
            "from a complete inbound block to its acknowledgement ready to send "
            "(journal commit included)",
            ["listener"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.deliveries = Counter(
            "eai_deliveries",
            "delivery attempts by destination and outcome (delivered, retrying, dead)",
            ["destination", "outcome"],
            registry=self.registry,
        )
        self.delivery_seconds = Histogram(
            "eai_delivery_latency_seconds",
            "one delivery attempt: from handing the item to the destination to its answer",
            ["destination"],
            buckets=_SEND_BUCKETS,
            registry=self.registry,
        )
        self.pipeline = Counter(
            "eai_pipeline_messages",
            "messages planned by the pipeline, by resulting status (processed, filtered, rejected)",
            ["status"],
            registry=self.registry,
        )
        self.anomalies = Counter(
            "eai_identity_anomalies",
            "identity anomalies found by the pipeline, by rule code and severity",
            ["rule", "severity"],
            registry=self.registry,
        )
        self.dicom_instances = Counter(
            "eai_dicom_instances",
            "DICOM instances received, by outcome (stored, rejected, refused)",
            ["listener", "outcome"],
            registry=self.registry,
        )
        self.dicom_bytes = Counter(
            "eai_dicom_received_bytes",
            "bytes of the DICOM instances stored (dataset as received)",
            ["listener"],
            registry=self.registry,
        )
        self.commit_seconds = Histogram(
            "eai_journal_commit_latency_seconds",
            "one journal transaction of the writer thread, from its start to its durable commit",
            buckets=_COMMIT_BUCKETS,
            registry=self.registry,
        )
        self.receipts = Counter(
            "eai_mssante_receipts",
            "MSSanté receipt mails read, by listener and outcome (journaled, already, "
            "quarantined_malformed, quarantined_unknown, quarantined_unverified, "
            "quarantined_too_large)",
            ["listener", "outcome"],
            registry=self.registry,
        )
        self.commit_failures = Counter(
            "eai_journal_commit_failures",
            "journal transactions that failed (database locked, disk full, connection lost...)",
            registry=self.registry,
        )
