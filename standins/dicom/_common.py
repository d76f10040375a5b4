"""DICOM peers' shared pieces: dcmtk binaries and environment, errors, the server process base.

Touches: subprocesses and the network (probes whether a port is listening).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

HOST = "127.0.0.1"
#: Return code of :func:`storescu` / :func:`echoscu` when they hit their timeout
#: (the same as coreutils' ``timeout``).
TIMEOUT_RC = 124
#: (FFFC,FFFC) Data Set Trailing Padding: dcmtk's storescu does not send it.
TRAILING_PADDING = 0xFFFCFFFC
_START_ATTEMPTS = 5
_START_TIMEOUT = 30.0
_STOP_GRACE = 10.0
_INSTALL_HINT = (
    "Install them with `apt-get install dcmtk orthanc` (as root), or run "
    "`scripts/install-test-peers.sh` / `make test`, which do it for you."
)


class DicomPeerUnavailable(RuntimeError):
    """A dcmtk tool or Orthanc is not installed."""


class DicomPeerStartError(RuntimeError):
    """A peer did not start; the message carries the tail of its log."""


class OrthancHttpError(RuntimeError):
    """Orthanc's REST API answered an HTTP error (``.status``, ``.body``)."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {body[:2000]}")
        self.status = status
        self.body = body


def require_binary(name: str) -> str:
    """Absolute path of the Debian program ``name``, or :class:`DicomPeerUnavailable`.

    The system directories come first: pynetdicom installs Python apps under the
    same names (``storescp``, ``storescu``, ``echoscu``) in the virtualenv's bin.
    """
    path = shutil.which(name, path="/usr/bin:/bin:/usr/sbin:/sbin") or shutil.which(name)
    if path is None:
        package = "orthanc" if name == "Orthanc" else "dcmtk"
        raise DicomPeerUnavailable(
            f"`{name}` (Debian package {package}) not found on PATH. {_INSTALL_HINT}"
        )
    return path


def dcmtk_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for dcmtk tools and Orthanc: ``TCP_NODELAY=1`` (Nagle off)."""
    env = dict(os.environ if base is None else base)
    env["TCP_NODELAY"] = "1"
    return env


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _listening_ports() -> set[int] | None:
    """TCP ports in LISTEN state (from /proc/net/tcp{,6}); None when /proc is unreadable."""
    ports: set[int] = set()
    found = False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        found = True
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A":  # TCP_LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports if found else None


def is_listening(port: int) -> bool:
    """True when something listens on TCP ``port`` (checked without connecting).

    Connecting would make the DICOM servers log a failed association; /proc is
    read instead, with a plain connect as the fallback when /proc is missing.
    """
    ports = _listening_ports()
    if ports is not None:
        return port in ports
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


class _Server:
    """A server subprocess with a log file, started on a free port (retried)."""

    name = "server"

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    # Subclasses: the command line for the chosen ports, readiness, port choice.
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _choose_ports(self, attempt: int) -> bool:
        """Pick the ports for this attempt; False when they were fixed by the caller
        (then a bind failure is not retried)."""
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def _spawn(self) -> subprocess.Popen[bytes]:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            return subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dcmtk_env(),
                start_new_session=True,
            )

    def start(self) -> Any:
        last = ""
        for attempt in range(_START_ATTEMPTS):
            retry_allowed = self._choose_ports(attempt)
            self.proc = self._spawn()
            deadline = time.monotonic() + _START_TIMEOUT
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if self._ready():
                    return self
                time.sleep(0.02)
            rc = self.proc.poll()
            self._terminate()
            last = (
                f"{self.name} exited with status {rc}"
                if rc is not None
                else f"{self.name} not ready after {_START_TIMEOUT:.0f}s"
            )
            if rc is None or not retry_allowed:
                break  # a hang or a fixed port: retrying would not help
        raise DicomPeerStartError(f"{last}; log {self.log_path}:\n{_tail(self.log_path)}")

    def _terminate(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(_STOP_GRACE)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(_STOP_GRACE)
        else:
            proc.wait()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after a grace period). Idempotent."""
        self._terminate()

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        return _tail(self.log_path, lines)

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
