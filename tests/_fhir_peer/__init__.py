"""The FHIR test peer: Medplum's FHIR router (``server.mjs``, Node) as a child process.

Touches: network (127.0.0.1), processes (node), files (none of its own).

``FhirPeer().start()`` runs ``node server.mjs 0`` from this folder (its ``node_modules``
installed by ``scripts/install-test-peers.sh``: npm, package-lock.json) and reads the
ports it bound; :meth:`FhirPeer.control` sets its behaviour, :meth:`FhirPeer.log` says
what it received and :meth:`FhirPeer.search` reads its repository.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

__all__ = ["FhirPeer", "PEER_DIR"]

PEER_DIR = Path(__file__).resolve().parent


class FhirPeer:
    """One running peer; ``tls``: (cert, key, ca) paths to serve HTTPS with client certs."""

    def __init__(self, tls: tuple[Path, Path, Path] | None = None) -> None:
        self.tls = tls
        self.port = 0
        self.control_port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> FhirPeer:
        node = shutil.which("node")
        assert node, "node is not installed (Node 20: scripts/install-test-peers.sh)"
        assert (PEER_DIR / "node_modules" / "@medplum" / "fhir-router").is_dir(), (
            "the FHIR peer's npm packages are missing: run scripts/install-test-peers.sh"
        )
        args = [node, "server.mjs", "0", *(str(p) for p in self.tls or ())]
        self._proc = subprocess.Popen(
            args, cwd=PEER_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().decode()  # the peer prints it once bound
        if not line.startswith("listening "):
            self.stop()
            raise AssertionError(f"FHIR peer did not start: {line!r}")
        self.port, self.control_port = (int(p) for p in line.split()[1:3])
        return self

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
            for stream in (self._proc.stdout, self._proc.stderr):
                if stream is not None:
                    stream.close()
            self._proc = None

    @property
    def base_url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}/fhir"

    @property
    def token_url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}/token"

    def _call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.control_port}{path}",
            data=data,
            method="POST" if data else "GET",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())

    def control(self, **settings: Any) -> None:
        """See server.mjs: script, mode, reason, delay, oauth2, clear."""
        self._call("/_control", settings)

    def log(self) -> list[dict[str, Any]]:
        """The requests received: method, path, id (X-Correlation-Id), auth, at, status."""
        rows: list[dict[str, Any]] = self._call("/_log")
        return rows

    def search(self, query: str) -> list[dict[str, Any]]:
        """The resources a FHIR search (``Patient?identifier=...``) finds, over the control
        port's sibling: the FHIR port itself (plain HTTP peers only)."""
        assert not self.tls, "search reads a plain HTTP peer"
        url = f"{self.base_url}/{query}{'&' if '?' in query else '?'}_count=1000"
        with urllib.request.urlopen(url, timeout=10) as answer:
            bundle = json.loads(answer.read())
        return [e["resource"] for e in bundle.get("entry") or ()]

    def __enter__(self) -> FhirPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
