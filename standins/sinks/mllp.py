"""An MLLP sink for demos: answers AA to every message and prints one line per message.

Touches: network (binds a local port), stdout.

Built on :class:`standins.mllp.MllpPeer` (its own framing, not the engine's). Each line
gives the message's type (MSH-9), control id (MSH-10) and size; with ``show`` the message
itself follows, one segment a line (it may carry patient data: a demo peer, on a test feed).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from standins.mllp import MllpPeer, ack_for, msh10

__all__ = ["MllpSink", "describe"]


def describe(payload: bytes) -> str:
    """``ADT^A01^ADT_A01 MSG0001 1234 bytes``: MSH-9, MSH-10 and the size of ``payload``."""
    msh = payload.replace(b"\r\n", b"\r").replace(b"\n", b"\r").split(b"\r", 1)[0]
    fields = msh.split(msh[3:4] or b"|")
    kind = fields[8].decode("latin-1") if len(fields) > 8 else "?"
    return f"{kind or '?'} {msh10(payload) or '?'} {len(payload)} bytes"


class MllpSink:
    """An :class:`MllpPeer` that answers AA and hands ``out`` one text per message."""

    def __init__(
        self, port: int = 0, *, show: bool = False, out: Callable[[str], None] = print
    ) -> None:
        self._show = show
        self._out = out
        self._lock = threading.Lock()
        self.peer = MllpPeer(answer=self._answer, port=port, record=False)

    def _answer(self, payload: bytes) -> bytes:
        text = describe(payload)
        if self._show:
            body = payload.replace(b"\r\n", b"\r").replace(b"\n", b"\r").strip(b"\r")
            text += "\n" + "\n".join(
                "  " + seg.decode("utf-8", "replace") for seg in body.split(b"\r")
            )
        with self._lock:
            self._out(text)
        return ack_for(payload, "AA")

    def start(self) -> int:
        """Starts listening on 127.0.0.1; returns the port."""
        self.peer.start()
        return self.peer.port

    def stop(self) -> None:
        self.peer.stop()
