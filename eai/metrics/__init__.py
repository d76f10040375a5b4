"""Supervision metrics: the instruments the engine and its plugins count with.

Touches: nothing (memory only). The endpoint that serves them (``/metrics``,
``/livez``, ``/readyz``) is :mod:`eai.metrics.endpoint`, started by the engine
when ``routes.yaml`` has a ``metrics:`` block.

The public API for the hot path (each call is one or two lock-protected
increments; take the meter once, at start, not per message):

- :func:`listener_meter` (``received`` / ``acknowledged`` / ``rejected`` /
  ``journal_failed``, counted by the engine around the journal for every
  listener type; ``ack_seconds``, observed by a listener that answers);
- :func:`destination_meter` (attempt outcomes, send duration), used by
  :mod:`eai.delivery`;
- :func:`dicom_meter` (instances stored / rejected / refused, bytes);
- :func:`journal_commit` (the writer thread), :func:`planned` (the pipeline:
  statuses and identity anomalies per rule);
- :func:`receipts_meter` (the MSSanté receipts reader: one of
  :data:`RECEIPT_OUTCOMES` per mail read).

This package imports no other part of ``eai`` but its version, so every layer
(the journal's writer included) may count; prometheus_client itself is loaded at the
first count (:func:`registry` builds the families then), so importing ``eai.metrics``
costs nothing to a CLI command that never counts.
"""

from eai.metrics._instruments import (
    DELIVERY_OUTCOMES,
    RECEIPT_OUTCOMES,
    DestinationMeter,
    DicomMeter,
    ListenerMeter,
    Observer,
    ReceiptsMeter,
    destination_meter,
    dicom_meter,
    journal_commit,
    listener_meter,
    planned,
    receipts_meter,
    registry,
)

__all__ = [
    "DELIVERY_OUTCOMES",
    "RECEIPT_OUTCOMES",
    "DestinationMeter",
    "DicomMeter",
    "ListenerMeter",
    "Observer",
    "ReceiptsMeter",
    "destination_meter",
    "dicom_meter",
    "journal_commit",
    "listener_meter",
    "planned",
    "receipts_meter",
    "registry",
]
