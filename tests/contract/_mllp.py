"""The MLLP destination's contract peer: ``standins.mllp.MllpPeer`` answering by mode.

Touches: network (127.0.0.1: the peer's listener, an MLLP sender to the engine).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from standins.mllp import MllpPeer, msh10
from tests._pki import Pki
from tests.contract._peer import Mode, feed_over_mllp, mllp_listener, server_tls
from tests.engine_harness import adt

__all__ = ["MllpContractPeer"]

_CODES: dict[Mode, str] = {"accept": "AA", "transient": "AE", "permanent": "AR"}


def _ack(payload: bytes, code: str, text: str) -> bytes:
    cid = msh10(payload).encode()
    return (
        b"MSH|^~\\&|PEER|PEER|EAI|EAI|20260101000000||ACK|A"
        + cid
        + b"|P|2.5\rMSA|"
        + code.encode()
        + b"|"
        + cid
        + b"|"
        + text.encode()
        + b"\r"
    )


class MllpContractPeer:
    destination_type = "mllp"
    permanent_reason = "PEER-REFUSED-7731"

    def __init__(self) -> None:
        self.mode: Mode = "accept"
        self.delay = 0.0
        self._peer: MllpPeer | None = None
        self._lock = threading.Lock()
        self._accepted: list[str] = []
        self._attempts = 0

    def _answer(self, payload: bytes) -> bytes:
        code = _CODES[self.mode]
        with self._lock:
            self._attempts += 1
            if code == "AA":
                self._accepted.append(msh10(payload))
        text = {"AA": "", "AE": "peer busy", "AR": self.permanent_reason}[code]
        return _ack(payload, code, text)

    def start(self, work: Path, tls: Pki | None = None) -> None:
        peer = MllpPeer(self._answer, record=False, tls=server_tls(tls) if tls else None)
        peer.delay = self.delay
        peer.start()
        self._peer = peer

    def stop(self) -> None:
        if self._peer is not None:
            self._peer.stop()
            self._peer = None

    @property
    def _live(self) -> MllpPeer:
        assert self._peer is not None, "peer not started"
        return self._peer

    def accepted(self) -> list[str]:
        with self._lock:
            return list(self._accepted)

    def attempts(self) -> int:
        with self._lock:
            return self._attempts

    def destination(self) -> dict[str, Any]:
        return {"type": "mllp", "host": "127.0.0.1", "port": self._live.port}

    def timeouts(self, connect: float, response: float) -> dict[str, Any]:
        return {"connect_timeout": f"{connect}s", "ack_timeout": f"{response}s"}

    def listener(self, port: int) -> dict[str, Any]:
        return mllp_listener(port)

    def feed(
        self, port: int, work: Path, patients: Sequence[str], each: int
    ) -> dict[str, list[str]]:
        return feed_over_mllp(port, patients, each, _adt)

    def behave(self, mode: Mode, delay: float = 0.0) -> None:
        self.mode = mode
        self.delay = delay
        if self._peer is not None:
            self._peer.delay = delay


def _adt(patient: str, i: int) -> tuple[str, str, bytes]:
    """The i-th A01 of ``patient``, reported by its control id."""
    cid = f"C{patient}-{i:03d}"
    return cid, cid, adt(cid, patient=patient)
