"""The DICOM destination's contract peer: a scripted Storage SCP (pynetdicom) answering by mode.

Touches: network (127.0.0.1: the SCP, dcmtk's storescu to the engine), files (test
instances written under the work directory), processes (storescu).

dcmtk's storescp always answers success; this SCP answers 0x0000, 0xA700 (out of
resources: transient) or 0xC7A1 (cannot understand: permanent, the status is the
reason ``eai messages show`` must give), after an optional delay, over TLS when asked.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pydicom
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt
from pynetdicom.events import Event
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer

from standins.dicom import make_ct_series, storescu
from tests._pki import Pki
from tests.contract._peer import Mode, server_tls

__all__ = ["DicomContractPeer"]

_STATUS: dict[Mode, int] = {"accept": 0x0000, "transient": 0xA700, "permanent": 0xC7A1}
_CALLER = "STORESCU"


class DicomContractPeer:
    destination_type = "dicom"
    permanent_reason = "0xC7A1"

    def __init__(self) -> None:
        self.mode: Mode = "accept"
        self.delay = 0.0
        self._server: ThreadedAssociationServer | None = None
        self._lock = threading.Lock()
        self._accepted: list[str] = []
        self._attempts = 0
        self._spool: Path | None = None

    def _store(self, event: Event) -> int:
        if self.delay:
            time.sleep(self.delay)
        status = _STATUS[self.mode]
        with self._lock:
            self._attempts += 1
            if status == 0x0000:
                self._accepted.append(str(event.request.AffectedSOPInstanceUID))
        return status

    def behave(self, mode: Mode, delay: float = 0.0) -> None:
        self.mode = mode
        self.delay = delay

    def start(self, work: Path, tls: Pki | None = None) -> None:
        ae = AE(ae_title="CONTRACTSCP")
        ae.add_supported_context(CTImageStorage, ALL_TRANSFER_SYNTAXES)
        ae.network_timeout = 5
        self._server = ae.start_server(
            ("127.0.0.1", 0),
            block=False,
            evt_handlers=[(evt.EVT_C_STORE, self._store)],
            ssl_context=server_tls(tls) if tls else None,
        )
        self._spool = work / "spool"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def accepted(self) -> list[str]:
        with self._lock:
            return list(self._accepted)

    def attempts(self) -> int:
        with self._lock:
            return self._attempts

    def destination(self) -> dict[str, Any]:
        assert self._server is not None, "peer not started"
        return {
            "type": "dicom",
            "ae_title": "CONTRACTSCP",
            "host": "127.0.0.1",
            "port": self._server.server_address[1],
            "nice": 0,
        }

    def timeouts(self, connect: float, response: float) -> dict[str, Any]:
        return {
            "connect_timeout": f"{connect}s",
            "acse_timeout": f"{response}s",
            "dimse_timeout": f"{response}s",
        }

    def listener(self, port: int) -> dict[str, Any]:
        assert self._spool is not None, "peer not started"
        return {
            "type": "dicom",
            "ae_title": "EAI",
            "bind": f"127.0.0.1:{port}",
            "spool_dir": str(self._spool),
            "allowed_callers": [{"ae_title": _CALLER}],
        }

    def feed(
        self, port: int, work: Path, patients: Sequence[str], each: int
    ) -> dict[str, list[str]]:
        """One study per patient; one association per instance, patients interleaved."""
        files = {
            p: make_ct_series(each, work / "instances" / f"{p}-{time.monotonic_ns()}", prefix=p)
            for p in patients
        }
        sent: dict[str, list[str]] = {p: [] for p in patients}
        for i in range(each):
            for patient in patients:
                path = files[patient][i]
                rc, out = storescu("127.0.0.1", port, [path], "EAI", _CALLER, timeout=30)
                assert rc == 0, out
                uid = pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID
                sent[patient].append(str(uid))
        return sent
