"""The engine's in-memory instruments: counters and histograms on one private registry.

Touches: nothing (memory only).

The families (:mod:`eai.metrics._families`) are built at the first count. Every name
has the ``eai_`` prefix and a base unit (seconds, bytes); counters end in
``_total``. Label values come only from the configuration (listener and destination
names), from rule codes, or from the fixed words below: never a patient id, a
control id or free text, so the exposition carries no health data.

The hot path takes a *meter* once (:func:`listener_meter`, :func:`destination_meter`,
:func:`dicom_meter`: cached, their label children bound) and then pays one
lock-protected increment per count (about a microsecond, see docs/benchmarks.md).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final, Protocol

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

    from eai.metrics._families import Families

__all__ = [
    "DELIVERY_OUTCOMES",
    "DestinationMeter",
    "DicomMeter",
    "ListenerMeter",
    "Observer",
    "destination_meter",
    "dicom_meter",
    "families",
    "journal_commit",
    "listener_meter",
    "RECEIPT_OUTCOMES",
    "ReceiptsMeter",
    "planned",
    "receipts_meter",
    "registry",
]

DELIVERY_OUTCOMES: Final = ("delivered", "retrying", "dead")
"""The ``outcome`` label of ``eai_deliveries_total`` (an attempt's result)."""


@functools.cache
def families() -> Families:
    """The process's families, built at the first count (prometheus_client is imported
    then: a CLI command that only reads the config never loads it)."""
    from eai.metrics._families import Families

    return Families()


def registry() -> CollectorRegistry:
    """The engine's own registry (never prometheus_client's global default one)."""
    return families().registry


class Observer(Protocol):
    """A histogram with its labels bound (what a meter's ``*_seconds`` attributes are)."""

    def observe(self, amount: float) -> None: ...


class ListenerMeter:
    """One listener's counters, labels bound once."""

    __slots__ = ("ack_seconds", "acknowledged", "journal_failed", "received", "rejected", "resent")

    def __init__(self, name: str) -> None:
        f = families()
        self.received = f.received.labels(name)
        self.acknowledged = f.acknowledged.labels(name)
        self.rejected = f.rejected.labels(name)
        self.journal_failed = f.journal_failed.labels(name)
        self.resent = f.retransmitted.labels(name)
        self.ack_seconds = f.ack_seconds.labels(name)

    def journaled(self, status: str, duplicate: bool, count: int = 1) -> None:
        """``count`` committed journal entries: ``status`` as the listener gave it."""
        self.received.inc(count)
        if status == "rejected":
            self.rejected.inc(count)
            return
        self.acknowledged.inc(count)
        if duplicate:
            self.resent.inc(count)

    def failed(self, count: int = 1) -> None:
        """The journal refused or timed out ``count`` times: each sender got a failure
        answer."""
        self.received.inc(count)
        self.journal_failed.inc(count)


class DestinationMeter:
    """One destination's counters, labels bound once."""

    __slots__ = ("_outcomes", "send_seconds")

    def __init__(self, name: str) -> None:
        f = families()
        self._outcomes = {o: f.deliveries.labels(name, o) for o in DELIVERY_OUTCOMES}
        self.send_seconds = f.delivery_seconds.labels(name)

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
        f = families()
        self._stored = f.dicom_instances.labels(name, "stored")
        self._rejected = f.dicom_instances.labels(name, "rejected")
        self._refused = f.dicom_instances.labels(name, "refused")
        self._bytes = f.dicom_bytes.labels(name)

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


RECEIPT_OUTCOMES: Final = (
    "journaled",
    "already",
    "quarantined_malformed",
    "quarantined_unknown",
    "quarantined_unverified",
    "quarantined_too_large",
)
"""The ``outcome`` label of ``eai_mssante_receipts_total``: journaled now, journaled by
an earlier pass (moved now), or quarantined with its reason."""


class ReceiptsMeter:
    """One receipts reader's outcomes (every outcome exported from the start, at 0)."""

    __slots__ = ("_outcomes",)

    def __init__(self, name: str) -> None:
        f = families()
        self._outcomes = {o: f.receipts.labels(name, o) for o in RECEIPT_OUTCOMES}

    def count(self, outcome: str) -> None:
        """One mail read; ValueError on an outcome not in :data:`RECEIPT_OUTCOMES` (a
        label value never comes from the mail)."""
        child = self._outcomes.get(outcome)
        if child is None:
            raise ValueError(f"unknown receipt outcome {outcome!r}")
        child.inc()


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


_RECEIPTS: dict[str, ReceiptsMeter] = {}


def receipts_meter(name: str) -> ReceiptsMeter:
    """The outcome meter of receipts listener ``name`` (a config name), created at first use."""
    meter = _RECEIPTS.get(name)
    if meter is None:
        meter = _RECEIPTS.setdefault(name, ReceiptsMeter(name))
    return meter


def journal_commit(seconds: float | None) -> None:
    """One writer transaction: its duration, or ``None`` when it failed."""
    f = families()
    if seconds is None:
        f.commit_failures.inc()
    else:
        f.commit_seconds.observe(seconds)


_PLANNED: dict[str, Any] = {}


def planned(statuses: Iterable[str], anomalies: Iterable[tuple[str, str]]) -> None:
    """One pipeline batch: each message's status, each anomaly's (rule code, severity)."""
    for status in statuses:
        child = _PLANNED.get(status)
        if child is None:
            child = _PLANNED.setdefault(status, families().pipeline.labels(status))
        child.inc()
    for rule, severity in anomalies:
        families().anomalies.labels(rule, severity).inc()
