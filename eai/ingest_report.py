"""What a listener serving in a process of its own tells the engine: its journal writes.

Touches: nothing (data only).

A listener in its own process (``own_process: true`` on an MLLP listener) opens the
journal itself, commits each message and answers the sender there. The engine's process
keeps what only it can do with that: its meters (``eai_messages_received_total``...,
``eai_ack_latency_seconds``), the ``journal_failing`` alert and waking its pipeline.
The listener's process sends an :class:`IngestReport` every few milliseconds while it
journals; the engine applies it (:meth:`eai.registry.JournalHost.journaled_elsewhere`).
What crosses is counts and durations, never message content.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["IngestReport"]


@dataclass(slots=True)
class IngestReport:
    """Journal writes and answers of one listener since its previous report."""

    journaled: Counter[tuple[str, bool]] = field(default_factory=Counter)
    """(status as the listener gave it, retransmission) -> committed entries."""
    failed: int = 0
    """Entries the journal refused or timed out on (the sender got AE/CE)."""
    ack_seconds: list[float] = field(default_factory=list)
    """How long each acknowledgement took, block complete to answer ready."""
    records: list[logging.LogRecord] = field(default_factory=list)
    """The process's log records (made picklable), for the engine's loggers."""

    def __bool__(self) -> bool:
        return bool(self.journaled or self.failed or self.ack_seconds or self.records)

    @property
    def received(self) -> int:
        """New messages for the pipeline (status ``received``, not a retransmission)."""
        return self.journaled[("received", False)]
