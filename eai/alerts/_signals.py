"""In-process signals the alert rules read: journal write failures, refused peer certificates.

Touches: nothing (counters in memory; :class:`TlsRejectionWatch` reads log records).

The engine counts each message it could not journal (the listener answered AE/CE);
the listeners log each TLS handshake they fail, with the error's class
(:func:`eai.net.server_handshake`), the delivery workers each failed attempt with its
reason (:mod:`eai.delivery`), and :class:`TlsRejectionWatch` counts those where the
peer's certificate did not verify, per ``listener:NAME`` or ``destination:NAME``. Both
keep timestamps for a bounded time only.
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
_VERIFY_FAILED = ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed")


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

    def tls_rejected(self, scope: str) -> None:
        """``scope``: ``listener:NAME`` or ``destination:NAME``."""
        with self._lock:
            self._tls.setdefault(scope, deque(maxlen=_MAX)).append(self._clock())

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
    """Counts the TLS handshakes (listeners, and destinations' connections) that failed
    because the peer's certificate did not verify."""

    def __init__(self, signals: Signals) -> None:
        super().__init__(logging.WARNING)
        self._signals = signals

    def emit(self, record: logging.LogRecord) -> None:
        args, msg = record.args, record.msg
        if not isinstance(msg, str) or not isinstance(args, tuple) or len(args) < 3:
            return
        if "TLS handshake with" in msg and args[2] in _CERT_ERRORS:
            self._signals.tls_rejected(f"listener:{args[0]}")
        elif msg.startswith("delivery %d to %s ") and len(args) >= 4:
            reason = str(args[3])
            if any(marker in reason for marker in _VERIFY_FAILED):
                self._signals.tls_rejected(f"destination:{args[1]}")


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
