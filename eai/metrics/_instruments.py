"""The engine's in-memory instruments: counters and histograms on one private registry.

Touches: nothing (memory only).

Every name has the ``eai_`` prefix and a base unit (seconds, bytes); counters end in
``_total``. Label values come only from the configuration (listener and destination
names), from rule codes, or from the fixed words below: never a patient id, a
control id or free text, so the exposition carries no health data.

The hot path takes a *meter* once (:func:`listener_meter`, :func:`destination_meter`,
:func:`dicom_meter`: cached, their label children bound) and then pays one
lock-protected increment per count (about a microsecond, see docs/benchmarks.md).
"""

from __future__ import annotations

import platform
from collections.abc import Iterable
from typing import Final, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, Info

import eai

__all__ = [
    "DELIVERY_OUTCOMES",
    "DestinationMeter",
    "DicomMeter",
    "ListenerMeter",
    "Observer",
    "REGISTRY",
    "destination_meter",
    "dicom_meter",
    "journal_commit",
    "listener_meter",
    "planned",
]

REGISTRY: Final = CollectorRegistry(auto_describe=True)
"""The engine's own registry (never prometheus_client's global default one)."""

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_COMMIT_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
_SEND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

DELIVERY_OUTCOMES: Final = ("delivered", "retrying", "dead")
"""The ``outcome`` label of ``eai_deliveries_total`` (an attempt's result)."""

_BUILD = Info("eai_build", "version of the running engine", registry=REGISTRY)
_BUILD.info({"version": eai.__version__, "python": platform.python_version()})

_RECEIVED = Counter(
    "eai_messages_received",
    "messages (and DICOM instances) handed to the journal by a listener",
    ["listener"],
    registry=REGISTRY,
)
_ACKNOWLEDGED = Counter(
    "eai_messages_acknowledged",
    "messages acknowledged positively after their durable commit (retransmissions included)",
    ["listener"],
    registry=REGISTRY,
)
_REJECTED = Counter(
    "eai_messages_rejected",
    "messages journaled as rejected (answered AR, or a DICOM failure status)",
    ["listener"],
    registry=REGISTRY,
)
_JOURNAL_FAILED = Counter(
    "eai_messages_journal_failed",
    "messages the journal could not commit (answered AE/CE, or DICOM 0xA700)",
    ["listener"],
    registry=REGISTRY,
)
_RETRANSMITTED = Counter(
    "eai_messages_retransmitted",
    "retransmissions recognised by the journal (answered with the stored ACK)",
    ["listener"],
    registry=REGISTRY,
)
_ACK_SECONDS = Histogram(
    "eai_ack_latency_seconds",
    "from a complete inbound block to its acknowledgement ready to send (journal commit included)",
    ["listener"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
_DELIVERIES = Counter(
    "eai_deliveries",
    "delivery attempts by destination and outcome (delivered, retrying, dead)",
    ["destination", "outcome"],
    registry=REGISTRY,
)
_DELIVERY_SECONDS = Histogram(
    "eai_delivery_latency_seconds",
    "one delivery attempt: from handing the item to the destination to its answer",
    ["destination"],
    buckets=_SEND_BUCKETS,
    registry=REGISTRY,
)
_PIPELINE = Counter(
    "eai_pipeline_messages",
    "messages planned by the pipeline, by resulting status (processed, filtered, rejected)",
    ["status"],
    registry=REGISTRY,
)
_ANOMALIES = Counter(
    "eai_identity_anomalies",
    "identity anomalies found by the pipeline, by rule code and severity",
    ["rule", "severity"],
    registry=REGISTRY,
)
_DICOM_INSTANCES = Counter(
    "eai_dicom_instances",
    "DICOM instances received, by outcome (stored, rejected, refused)",
    ["listener", "outcome"],
    registry=REGISTRY,
)
_DICOM_BYTES = Counter(
    "eai_dicom_received_bytes",
    "bytes of the DICOM instances stored (dataset as received)",
    ["listener"],
    registry=REGISTRY,
)
_COMMIT_SECONDS = Histogram(
    "eai_journal_commit_latency_seconds",
    "one journal transaction of the writer thread, from its start to its durable commit",
    buckets=_COMMIT_BUCKETS,
    registry=REGISTRY,
)
_COMMIT_FAILURES = Counter(
    "eai_journal_commit_failures",
    "journal transactions that failed (database locked, disk full, connection lost...)",
    registry=REGISTRY,
)


class Observer(Protocol):
    """A histogram with its labels bound (what a meter's ``*_seconds`` attributes are)."""

    def observe(self, amount: float) -> None: ...


class ListenerMeter:
    """One listener's counters, labels bound once."""

    __slots__ = ("ack_seconds", "acknowledged", "journal_failed", "received", "rejected", "resent")

    def __init__(self, name: str) -> None:
        self.received = _RECEIVED.labels(name)
        self.acknowledged = _ACKNOWLEDGED.labels(name)
        self.rejected = _REJECTED.labels(name)
        self.journal_failed = _JOURNAL_FAILED.labels(name)
        self.resent = _RETRANSMITTED.labels(name)
        self.ack_seconds = _ACK_SECONDS.labels(name)

    def journaled(self, status: str, duplicate: bool) -> None:
        """A committed journal entry: ``status`` as the listener gave it."""
        self.received.inc()
        if status == "rejected":
            self.rejected.inc()
            return
        self.acknowledged.inc()
        if duplicate:
            self.resent.inc()

    def failed(self) -> None:
        """The journal refused or timed out: the sender got a failure answer."""
        self.received.inc()
        self.journal_failed.inc()


class DestinationMeter:
    """One destination's counters, labels bound once."""

    __slots__ = ("_outcomes", "send_seconds")

    def __init__(self, name: str) -> None:
        self._outcomes = {o: _DELIVERIES.labels(name, o) for o in DELIVERY_OUTCOMES}
        self.send_seconds = _DELIVERY_SECONDS.labels(name)

    def outcomes(self, statuses: Iterable[str]) -> None:
        """The statuses of recorded attempts; others (``pending``: not attempted) are
        not attempts and are not counted."""
        for status in statuses:
            child = self._outcomes.get(status)
            if child is not None:
                child.inc()


class DicomMeter:
    """One DICOM listener's instance counters."""

    __slots__ = ("_bytes", "_refused", "_rejected", "_stored")

    def __init__(self, name: str) -> None:
        self._stored = _DICOM_INSTANCES.labels(name, "stored")
        self._rejected = _DICOM_INSTANCES.labels(name, "rejected")
        self._refused = _DICOM_INSTANCES.labels(name, "refused")
        self._bytes = _DICOM_BYTES.labels(name)

    def answered(self, status: int, size: int) -> None:
        """One C-STORE answered ``status`` for a dataset of ``size`` bytes: 0x0000 stored,
        0xA7xx (out of resources: spool or journal unavailable) refused, any other
        failure rejected."""
        if status == 0:
            self._stored.inc()
            self._bytes.inc(size)
        elif status & 0xFF00 == 0xA700:
            self._refused.inc()
        else:
            self._rejected.inc()


_LISTENERS: dict[str, ListenerMeter] = {}
_DESTINATIONS: dict[str, DestinationMeter] = {}
_DICOM: dict[str, DicomMeter] = {}


def listener_meter(name: str) -> ListenerMeter:
    """The meter of listener ``name`` (a config name), created at first use."""
    meter = _LISTENERS.get(name)
    if meter is None:
        meter = _LISTENERS.setdefault(name, ListenerMeter(name))
    return meter


def destination_meter(name: str) -> DestinationMeter:
    """The meter of destination ``name`` (a config name), created at first use."""
    meter = _DESTINATIONS.get(name)
    if meter is None:
        meter = _DESTINATIONS.setdefault(name, DestinationMeter(name))
    return meter


def dicom_meter(name: str) -> DicomMeter:
    """The instance meter of DICOM listener ``name``, created at first use."""
    meter = _DICOM.get(name)
    if meter is None:
        meter = _DICOM.setdefault(name, DicomMeter(name))
    return meter


def journal_commit(seconds: float | None) -> None:
    """One writer transaction: its duration, or ``None`` when it failed."""
    if seconds is None:
        _COMMIT_FAILURES.inc()
    else:
        _COMMIT_SECONDS.observe(seconds)


_PLANNED: dict[str, Counter] = {}


def planned(statuses: Iterable[str], anomalies: Iterable[tuple[str, str]]) -> None:
    """One pipeline batch: each message's status, each anomaly's (rule code, severity)."""
    for status in statuses:
        child = _PLANNED.get(status)
        if child is None:
            child = _PLANNED.setdefault(status, _PIPELINE.labels(status))
        child.inc()
    for rule, severity in anomalies:
        _ANOMALIES.labels(rule, severity).inc()
