"""An Orthanc server with its own temporary configuration, storage and index.

Touches: subprocesses, network (DICOM and its REST API), files (its configuration, storage, log).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from standins.dicom._common import HOST, OrthancHttpError, _Server, is_listening, require_binary
from standins.net import free_port


class Orthanc(_Server):
    """An Orthanc server with a temporary configuration in ``workdir``.

    ``workdir`` receives ``orthanc.json``, ``storage/``, ``index/`` and
    ``orthanc.log``. The configuration accepts every transfer syntax
    (``1.2.840.10008.1.*``) and unknown SOP classes, does not check the called
    AE title, lets any AE store and echo, loads no plugins or Lua scripts, has
    HTTP authentication off and remote HTTP access off, and keeps Orthanc's
    default ``SyncStorageArea: true`` (fsync of every stored file). ``modalities``
    (name -> (AE title, host, port)) fills ``DicomModalities``, for instance to
    make Orthanc send to the router with :meth:`store_to`; ``config`` entries
    override or add to the generated configuration.

    ``with Orthanc(tmp_path / "orthanc") as o: ... o.port ... o.instances_count()``
    """

    name = "Orthanc"

    def __init__(
        self,
        workdir: Path | str,
        ae_title: str = "ORTHANC",
        dicom_port: int | None = None,
        http_port: int | None = None,
        *,
        modalities: Mapping[str, tuple[str, str, int]] | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.ae_title = ae_title
        self._fixed = (dicom_port, http_port)
        self.port = dicom_port or 0
        self.http_port = http_port or 0
        self.modalities = dict(modalities or {})
        self.extra_config = dict(config or {})
        self.binary = require_binary("Orthanc")
        self.config_path = self.workdir / "orthanc.json"
        super().__init__(self.workdir / "orthanc.log")

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    def _choose_ports(self, attempt: int) -> bool:
        dicom, http = self._fixed
        self.port = dicom or free_port(HOST)
        self.http_port = http or free_port(HOST)
        while self.http_port == self.port:
            self.http_port = free_port(HOST)
        self._write_config()
        return not (dicom and http)

    def configuration(self) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "Name": f"eai-test-{self.ae_title}",
            "StorageDirectory": str(self.workdir / "storage"),
            "IndexDirectory": str(self.workdir / "index"),
            "Plugins": [],
            "LuaScripts": [],
            "HttpServerEnabled": True,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "HttpDescribeErrors": True,
            "KeepAlive": True,
            "TcpNoDelay": True,
            "DicomServerEnabled": True,
            "DicomAet": self.ae_title,
            "DicomPort": self.port,
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "AcceptedTransferSyntaxes": ["1.2.840.10008.1.*"],
            "UnknownSopClassAccepted": True,
            "DicomModalities": {
                name: [aet, host, port] for name, (aet, host, port) in self.modalities.items()
            },
            "DicomScuTimeout": 10,
            "SaveJobs": False,
            "SyncStorageArea": True,
            "OverwriteInstances": False,
        }
        conf.update(self.extra_config)
        return conf

    def _write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(self.configuration(), indent=2))

    def _command(self) -> list[str]:
        # The configuration is a plain argument (``--config=FILE`` writes a sample).
        return [self.binary, str(self.config_path)]

    def _ready(self) -> bool:
        try:
            system = self.get("/system", timeout=1.0)
        except (OSError, ValueError, OrthancHttpError):
            return False
        return bool(system.get("DicomPort") == self.port) and is_listening(self.port)

    def start(self) -> Orthanc:
        started: Orthanc = super().start()
        return started

    def restart(self) -> Orthanc:
        """Stop and start again on the same ports, keeping storage and index."""
        self.stop()
        fixed, self._fixed = self._fixed, (self.port, self.http_port)
        try:
            return self.start()
        finally:
            self._fixed = fixed

    # -- REST API ---------------------------------------------------------------

    def _request(
        self, method: str, path: str, body: bytes | None = None, timeout: float = 30.0
    ) -> bytes:
        req = urllib.request.Request(self.url + path, data=body, method=method)
        if body is not None:
            req.add_header("Content-Type", "application/octet-stream")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                data: bytes = resp.read()
        except urllib.error.HTTPError as exc:
            with exc:  # an HTTPError holds the open response: close it
                text = exc.read().decode(errors="replace")
            raise OrthancHttpError(method, path, exc.code, text) from None
        return data

    def get(self, path: str, timeout: float = 30.0) -> Any:
        """GET ``path`` of the REST API, decoded from JSON."""
        return json.loads(self._request("GET", path, timeout=timeout))

    def post(self, path: str, body: bytes | str | Any, timeout: float = 60.0) -> Any:
        """POST to the REST API: bytes as they are, str as UTF-8, anything else as JSON."""
        if isinstance(body, str):
            data = body.encode()
        elif isinstance(body, bytes):
            data = body
        else:
            data = json.dumps(body).encode()
        return json.loads(self._request("POST", path, data, timeout=timeout) or b"null")

    def instances_count(self) -> int:
        """Instances stored so far (``/statistics`` ``CountInstances``)."""
        return int(self.get("/statistics")["CountInstances"])

    def instances(self) -> list[str]:
        """Orthanc's ids of the stored instances."""
        ids: list[str] = self.get("/instances")
        return ids

    def instance_file(self, orthanc_id: str) -> bytes:
        """The stored DICOM file of one instance, as Orthanc received it."""
        return self._request("GET", f"/instances/{orthanc_id}/file")

    def instance_tags(self, orthanc_id: str) -> dict[str, Any]:
        """``/instances/<id>/simplified-tags`` (keyword -> value)."""
        tags: dict[str, Any] = self.get(f"/instances/{orthanc_id}/simplified-tags")
        return tags

    def upload(self, path: Path | str) -> str:
        """Store a DICOM file through the REST API (not DICOM); return its Orthanc id."""
        answer = self.post("/instances", Path(path).read_bytes())
        return str(answer["ID"])

    def store_to(self, modality: str, orthanc_ids: Sequence[str], timeout: float = 120.0) -> Any:
        """C-STORE instances (or studies, series...) to a configured modality, synchronously."""
        return self.post(
            f"/modalities/{modality}/store",
            {"Resources": list(orthanc_ids), "Synchronous": True},
            timeout=timeout,
        )

    def wait_instances(self, n: int, timeout: float = 30.0) -> int:
        """Wait until at least ``n`` instances are stored; return the count."""
        deadline = time.monotonic() + timeout
        while True:
            count = self.instances_count()
            if count >= n:
                return count
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"Orthanc holds {count} instances, expected {n}; log:\n{self.log_tail()}"
                )
            time.sleep(0.02)
