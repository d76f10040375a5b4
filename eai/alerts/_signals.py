"""In-process signals the alert rules read: journal write failures, refused peer certificates.

Touches: nothing (counters in memory; :class:`TlsRejectionWatch` reads log records).

The engine counts each message it could not journal (the listener answered AE/CE);
the listeners log each TLS handshake they fail, with the error's class
(:func:`eai.net.server_handshake`), and :class:`TlsRejectionWatch` counts those where
the peer's certificate did not verify. Both keep timestamps for a bounded time only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

__all__ = ["Signals", "TlsRejectionWatch", "listener_ports"]

_KEEP = 86400.0
_MAX = 10_000
_CERT_ERRORS = frozenset({"SSLCertVerificationError"})


class Signals:
    """Thread-safe timestamps of recent failures (listener threads write, the alerts read)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._journal: deque[float] = deque(maxlen=_MAX)
        self._tls: dict[str, deque[float]] = {}

    def journal_failed(self) -> None:
        with self._lock:
            self._journal.append(self._clock())

    def tls_rejected(self, listener: str) -> None:
        with self._lock:
            self._tls.setdefault(listener, deque(maxlen=_MAX)).append(self._clock())

    def journal_failures(self, window: float) -> tuple[int, float | None]:
        """Failures within the last ``window`` s, and the age of the last one."""
        with self._lock:
            return self._count(self._journal, window)

    def tls_rejections(self, window: float) -> dict[str, tuple[int, float | None]]:
        with self._lock:
            return {name: self._count(q, window) for name, q in self._tls.items()}

    def _count(self, stamps: deque[float], window: float) -> tuple[int, float | None]:
        now = self._clock()
        while stamps and stamps[0] < now - _KEEP:
            stamps.popleft()
        recent = sum(1 for t in stamps if t >= now - window)
        return recent, (now - stamps[-1]) if stamps else None


class TlsRejectionWatch(logging.Handler):
    """Counts the listeners' failed TLS handshakes whose cause is the peer's certificate."""

    def __init__(self, signals: Signals) -> None:
        super().__init__(logging.WARNING)
        self._signals = signals

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if (
            isinstance(record.msg, str)
            and "TLS handshake with" in record.msg
            and isinstance(args, tuple)
            and len(args) == 3
            and args[2] in _CERT_ERRORS
        ):
            self._signals.tls_rejected(str(args[0]))


def listener_ports(listeners: Mapping[str, object]) -> dict[str, int | None]:
    """The bound port of each network listener (those with a ``port``); None when it
    cannot say (not started, or closed)."""
    out: dict[str, int | None] = {}
    for name, listener in listeners.items():
        if not hasattr(type(listener), "port"):
            continue
        try:
            port = getattr(listener, "port", None)
        except Exception:  # noqa: BLE001 - a listener that is not bound
            port = None
        out[name] = port if isinstance(port, int) else None
    return out
