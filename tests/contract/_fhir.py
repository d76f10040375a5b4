"""The FHIR destination's contract peer: Medplum's FHIR router (``tests._fhir_peer``).

Touches: network (127.0.0.1: the peer, an MLLP sender to the engine), processes (node).

The engine is fed PAM FR ADT over MLLP and its route maps them (``map: auto``:
pamfr-adt) into the Bundles the destination sends; the peer knows each message by the
``X-Correlation-Id`` header (its MSH-10) and answers by mode: the FHIR router itself
(accept), 503 (transient), 422 with an OperationOutcome (permanent).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests._fhir_peer import FhirPeer
from tests._pki import Pki
from tests.contract._peer import Mode, feed_over_mllp, mllp_listener
from tests.engine_harness import adt

__all__ = ["FhirContractPeer"]


class FhirContractPeer:
    destination_type = "fhir"
    permanent_reason = "SCAD-REFUSED-4711"
    route = {"map": "auto"}
    """Keys of the contract route: a route to a fhir destination names a mapping."""

    def __init__(self) -> None:
        self._peer: FhirPeer | None = None
        self._behaviour: dict[str, Any] = {"mode": "accept", "delay": 0.0}

    def start(self, work: Path, tls: Pki | None = None) -> None:
        certs = (tls.server_cert, tls.server_key, tls.ca) if tls is not None else None
        self._peer = FhirPeer(tls=certs).start()
        self._peer.control(reason=self.permanent_reason, **self._behaviour)

    def stop(self) -> None:
        if self._peer is not None:
            self._peer.stop()
            self._peer = None

    @property
    def _live(self) -> FhirPeer:
        assert self._peer is not None, "peer not started"
        return self._peer

    def behave(self, mode: Mode, delay: float = 0.0) -> None:
        self._behaviour = {"mode": mode, "delay": delay}
        if self._peer is not None:
            self._peer.control(**self._behaviour)

    def accepted(self) -> list[str]:
        return [r["id"] for r in self._live.log() if r["path"] == "/fhir" and r["status"] == 200]

    def attempts(self) -> int:
        return sum(1 for r in self._live.log() if r["path"] == "/fhir")

    def destination(self) -> dict[str, Any]:
        return {"type": "fhir", "base_url": self._live.base_url}

    def at_port(self, port: int) -> dict[str, Any]:
        """The destination keys that point it at another port of 127.0.0.1."""
        scheme = "https" if self._live.tls else "http"
        return {"base_url": f"{scheme}://127.0.0.1:{port}/fhir"}

    def timeouts(self, connect: float, response: float) -> dict[str, Any]:
        return {"connect_timeout": f"{connect}s", "response_timeout": f"{response}s"}

    def listener(self, port: int) -> dict[str, Any]:
        return mllp_listener(port)

    def feed(
        self, port: int, work: Path, patients: Sequence[str], each: int
    ) -> dict[str, list[str]]:
        return feed_over_mllp(port, patients, each, _adt)


def _adt(patient: str, i: int) -> tuple[str, str, bytes]:
    """The i-th A01 of ``patient``, reported by its control id."""
    cid = f"C{patient}-{i:03d}"
    return cid, cid, adt(cid, patient=patient)
