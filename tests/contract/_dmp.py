"""The DMP destination's contract peer: ``standins.dmp.DmpStandin`` answering by mode.

Touches: network (127.0.0.1: the stand-in's HTTPS listener, an MLLP sender to the engine),
files (its PKI and seal under the test's work directory).

The DMP always runs over mutual TLS: without the suite's PKI the peer makes its own. The
ids are the published documents' uniqueIds: each message fed is the national CR-BIO ORU
with its own MSH-10, its own document id (``ClinicalDocument/id@root``) and, per patient,
its own INS (PID-3 and the CDA's recordTarget, a valid NIR key).
"""

from __future__ import annotations

import base64
import itertools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from standins.dmp import Answer, DmpStandin
from tests._cisis import ORU, edit, segments
from tests._pki import Pki, make_pki, make_seal
from tests.contract._peer import Mode, client_tls, feed_over_mllp, mllp_listener

__all__ = ["DmpContractPeer"]

_DOC_ROOT = "1.2.250.1.213.1.1.9"
_RUN = itertools.count(int(time.time() * 1000) % 10**9)


def _ins(patient: str) -> str:
    """A valid INS (NIR and key) per test patient name."""
    nir = "2790351215" + f"{100 + sum(map(ord, patient)) % 900:03d}"
    return nir + f"{97 - int(nir) % 97:02d}"


def _oru(control_id: str, patient: str, document_root: str) -> bytes:
    ins = _ins(patient)
    obx = next(s for s in segments(ORU) if s.startswith("OBX|1|ED|"))
    fields = obx.split("|")
    parts = fields[5].split("^")
    cda = base64.b64decode(parts[4] + "=" * (-len(parts[4]) % 4))
    cda = cda.replace(
        f'<id root="{_DOC_ROOT}"/>'.encode(), f'<id root="{document_root}"/>'.encode(), 1
    )
    cda = cda.replace(b'extension="279035121518989"', f'extension="{ins}"'.encode())
    parts[4] = base64.b64encode(cda).decode("ascii")
    fields[5] = "^".join(parts)
    message = edit(ORU, "MSH", 10, control_id)
    pid3 = next(s for s in segments(message) if s.startswith("PID|")).split("|")[3]
    message = edit(message, "PID", 3, pid3.replace("279035121518989", ins, 1))
    return edit(message, "OBX", 5, fields[5])


class DmpContractPeer:
    destination_type = "dmp"
    permanent_reason = "DMP-REFUSED-5519"

    def __init__(self) -> None:
        self._standin: DmpStandin | None = None
        self._pki: Pki | None = None
        self._seal: tuple[Path, Path] | None = None
        self._answer = Answer()
        self._delay = 0.0

    def _make_answer(self, mode: Mode) -> Answer:
        if mode == "transient":
            return Answer("receiver-fault")
        if mode == "permanent":
            return Answer("failure", [("XDSRegistryMetadataError", self.permanent_reason)])
        return Answer()

    def behave(self, mode: Mode, delay: float = 0.0) -> None:
        self._answer = self._make_answer(mode)
        self._delay = delay
        if self._standin is not None:
            self._standin.answer = self._answer
            self._standin.delay = delay

    def start(self, work: Path, tls: Pki | None = None) -> None:
        self._pki = tls or make_pki(work / "dmp-pki")
        cert, key, ca = make_seal()
        seal_cert, seal_key, seal_ca = (work / n for n in ("seal.crt", "seal.key", "seal-ca.crt"))
        seal_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        seal_key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        seal_ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        self._seal = (seal_cert, seal_key)
        standin = DmpStandin(self._pki.server_cert, self._pki.server_key, self._pki.ca, seal_ca)
        standin.answer = self._answer
        standin.delay = self._delay
        self._standin = standin.start()

    def stop(self) -> None:
        if self._standin is not None:
            self._standin.stop()
            self._standin = None

    @property
    def _live(self) -> DmpStandin:
        assert self._standin is not None, "peer not started"
        return self._standin

    def accepted(self) -> list[str]:
        return [
            uid
            for checked in self._live.published
            for uid in checked.unique_ids
            if uid.startswith(_DOC_ROOT + ".")
        ]

    def attempts(self) -> int:
        return len(self._live.received)

    def destination(self) -> dict[str, Any]:
        assert self._pki is not None and self._seal is not None, "peer not started"
        return {
            "type": "dmp",
            "url": self._live.url,
            "tls": client_tls(self._pki),
            "sign_cert": str(self._seal[0]),
            "sign_key": str(self._seal[1]),
            "source_id": "1.2.250.1.999.1.1",
            "structure_id": "1120459876",
            "activity_sector": "SA25^1.2.250.1.71.4.2.4",
            "homologation_id": "HOMOL-TEST",
        }

    def at_port(self, port: int) -> dict[str, Any]:
        return {"url": f"https://127.0.0.1:{port}/repository"}

    def timeouts(self, connect: float, response: float) -> dict[str, Any]:
        return {"connect_timeout": f"{connect}s", "response_timeout": f"{response}s"}

    def listener(self, port: int) -> dict[str, Any]:
        return mllp_listener(port)

    def feed(
        self, port: int, work: Path, patients: Sequence[str], each: int
    ) -> dict[str, list[str]]:
        return feed_over_mllp(port, patients, each, _report)


def _report(patient: str, i: int) -> tuple[str, str, bytes]:
    """The i-th CR-BIO ORU of ``patient``, with a document id of its own (the stand-in
    reports publications by it)."""
    cid = f"D{patient}-{i:03d}"
    root = f"{_DOC_ROOT}.{next(_RUN)}"
    return cid, root, _oru(cid, patient, root)
