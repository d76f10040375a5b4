"""Real DICOM peers for tests and benchmarks: dcmtk's tools and Orthanc.

Debian's packages ``dcmtk`` (``storescp``, ``storescu``, ``echoscu``) and
``orthanc`` (``Orthanc``); ``scripts/install-test-peers.sh`` installs them. Tests
never skip when they are missing: :class:`DicomPeerUnavailable` says what to
install.

* :class:`StoreScp` -- dcmtk ``storescp`` receiving into a directory;
* :class:`Orthanc` -- an Orthanc server with its own temporary configuration,
  storage and index (the system service of the Debian package is never used);
* :func:`storescu` / :func:`echoscu` -- one-shot SCUs returning
  ``(returncode, output)``;
* :func:`make_ct_series` -- copies of pydicom's ``CT_small.dcm`` with new UIDs.

Every server listens on a port the OS reported free (:func:`tests._net.free_port`),
retried with a new one when it is taken before the server binds it, and is
reached on 127.0.0.1. (Neither ``storescp`` 3.6.7 nor Orthanc 1.10 has a bind
address option: both bind 0.0.0.0. Orthanc's HTTP API refuses non-local
clients with ``RemoteAccessAllowed: false``.)

Nagle's algorithm: dcmtk only sets ``TCP_NODELAY`` on its sockets when the
environment variable ``TCP_NODELAY=1`` is set (checked with strace: without it,
no ``setsockopt(TCP_NODELAY)``). Every dcmtk tool here, and Orthanc (which uses
dcmtk's network code for DICOM), runs with :func:`dcmtk_env`. Orthanc's HTTP
server gets ``"TcpNoDelay": true`` in its configuration. Without this, every
peer falls to ~10-20 images/s on loopback.

Servers are started in their own session, stopped with SIGTERM (SIGKILL after a
grace period) on :meth:`stop` / ``__exit__``, and log to a file whose tail is
put in every error message.

This module does not depend on pytest.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from tests._net import free_port

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


class StoreScp(_Server):
    """dcmtk ``storescp`` writing every received instance into ``out_dir``.

    Accepts every storage SOP class (``-pm``: also unknown ones) and every
    transfer syntax dcmtk knows (``+xa``), as received; writes the data exactly
    as read (``+B`` bit-preserving: file meta + dataset bytes as sent), one file
    per C-STORE with a unique name (``+uf``, so an instance received twice is two
    files). With ``+B`` the dataset is byte-identical to what was received; the
    file meta information (group 0002) is storescp's own, so compare datasets,
    not whole files. ``+uf`` / ``+B`` can be turned off with ``unique_filenames`` /
    ``bit_preserving``; ``extra_args`` are added before the port (for instance
    ``("--refuse",)`` or ``("--sleep-during", "2")``).

    ``with StoreScp(tmp_path / "out") as scp: ... scp.port ... scp.files()``
    """

    name = "storescp"

    def __init__(
        self,
        out_dir: Path | str,
        ae_title: str = "STORESCP",
        *,
        port: int | None = None,
        unique_filenames: bool = True,
        bit_preserving: bool = True,
        verbose: bool = False,
        extra_args: Sequence[str] = (),
        log_path: Path | str | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.ae_title = ae_title
        self._fixed_port = port
        self.port = port or 0
        self.unique_filenames = unique_filenames
        self.bit_preserving = bit_preserving
        self.verbose = verbose
        self.extra_args = tuple(extra_args)
        self.binary = require_binary("storescp")
        default_log = self.out_dir.parent / f"{self.out_dir.name}.storescp.log"
        super().__init__(Path(log_path) if log_path else default_log)

    def _choose_ports(self, attempt: int) -> bool:
        if self._fixed_port:
            self.port = self._fixed_port
            return False
        self.port = free_port(HOST)
        return True

    def _command(self) -> list[str]:
        cmd = [self.binary, "+xa", "-pm", "-dhl", "-aet", self.ae_title, "-od", str(self.out_dir)]
        if self.bit_preserving:
            cmd.append("+B")
        if self.unique_filenames:
            cmd.append("+uf")
        if self.verbose:
            cmd.append("-v")
        return [*cmd, *self.extra_args, str(self.port)]

    def _ready(self) -> bool:
        return is_listening(self.port)

    def start(self) -> StoreScp:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        started: StoreScp = super().start()
        return started

    def restart(self) -> StoreScp:
        """Stop and start again on the same port (for 'destination down' tests)."""
        self.stop()
        port, self._fixed_port = self._fixed_port, self.port
        try:
            return self.start()
        finally:
            self._fixed_port = port

    def files(self) -> list[Path]:
        """The files received so far, sorted by name (may include one being written)."""
        if not self.out_dir.is_dir():
            return []
        return sorted(p for p in self.out_dir.iterdir() if p.is_file())

    def count(self) -> int:
        """How many files are in ``out_dir`` (cheaper than :meth:`files`)."""
        try:
            with os.scandir(self.out_dir) as entries:
                return sum(1 for e in entries if e.is_file())
        except FileNotFoundError:
            return 0

    def wait_files(self, n: int, timeout: float = 30.0, settle: float = 0.05) -> list[Path]:
        """Wait until at least ``n`` files exist and their sizes are stable for ``settle``
        seconds (storescp writes each file in place before answering); return them.
        Raises TimeoutError (with the log tail) when they do not arrive in time."""
        deadline = time.monotonic() + timeout
        sizes: dict[Path, int] | None = None
        while True:
            files = self.files()
            if len(files) >= n:
                now = {p: p.stat().st_size for p in files}
                if now == sizes:
                    return files
                sizes = now
                time.sleep(settle)
            elif time.monotonic() >= deadline:
                raise TimeoutError(
                    f"storescp on port {self.port} holds {len(files)} files, expected {n}; "
                    f"log:\n{self.log_tail()}"
                )
            else:
                sizes = None
                time.sleep(0.01)


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


# -- one-shot SCUs ------------------------------------------------------------------


def _run_tool(cmd: list[str], timeout: float) -> tuple[int, str]:
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dcmtk_env(),
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out.decode(errors="replace")
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        text = out.decode(errors="replace")
        return TIMEOUT_RC, f"{text}\n[{Path(cmd[0]).name} killed after {timeout:g}s timeout]"
    finally:
        if proc.poll() is None:  # an exception other than the timeout
            proc.kill()
            proc.wait()


def storescu(
    host: str,
    port: int,
    files: Iterable[Path | str],
    called_ae: str,
    calling_ae: str = "STORESCU",
    extra_args: Sequence[str] = (),
    timeout: float = 120.0,
) -> tuple[int, str]:
    """dcmtk ``storescu``: send ``files`` in ONE association; return (returncode, output).

    Directories among ``files`` are scanned recursively (``+sd +r``). storescu
    proposes every uncompressed transfer syntax plus the one of each file (one
    presentation context per SOP class and transfer syntax, at most 128: for many
    different SOP classes in one call, pass ``extra_args=("-R",)`` to propose only
    what the files need), and stops at the first failed store unless
    ``extra_args`` has ``-nh``. The returncode is :data:`TIMEOUT_RC` when it was
    killed after ``timeout`` seconds.
    """
    paths = [str(f) for f in files]
    cmd = [require_binary("storescu"), "-aet", calling_ae, "-aec", called_ae]
    if any(Path(p).is_dir() for p in paths):
        cmd += ["+sd", "+r"]
    cmd += [*extra_args, host, str(port), *paths]
    return _run_tool(cmd, timeout)


def echoscu(
    host: str,
    port: int,
    called_ae: str,
    calling_ae: str = "ECHOSCU",
    extra_args: Sequence[str] = (),
    timeout: float = 30.0,
) -> tuple[int, str]:
    """dcmtk ``echoscu`` (C-ECHO); return (returncode, output)."""
    cmd = [require_binary("echoscu"), "-aet", calling_ae, "-aec", called_ae]
    cmd += [*extra_args, host, str(port)]
    return _run_tool(cmd, timeout)


# -- test data ----------------------------------------------------------------------

_LONG_VRS = {
    b"OB",
    b"OD",
    b"OF",
    b"OL",
    b"OV",
    b"OW",
    b"SQ",
    b"SV",
    b"UC",
    b"UN",
    b"UR",
    b"UT",
    b"UV",
}


def dataset_bytes(path: Path | str) -> bytes:
    """The bytes of a DICOM file after its preamble and file meta information (group
    0002, always explicit VR little endian): the dataset as it was sent or received.

    storescp (``+B``) writes its own file meta before the received dataset, so
    compare this, not whole files. A file without the ``DICM`` prefix is returned
    whole (a bare dataset).
    """
    raw = Path(path).read_bytes()
    if raw[128:132] != b"DICM":
        return raw
    pos = 132
    while pos + 8 <= len(raw) and raw[pos : pos + 2] == b"\x02\x00":
        vr = raw[pos + 4 : pos + 6]
        if vr in _LONG_VRS:
            length = int.from_bytes(raw[pos + 8 : pos + 12], "little")
            pos += 12 + length
        else:
            length = int.from_bytes(raw[pos + 6 : pos + 8], "little")
            pos += 8 + length
    return raw[pos:]


def ct_small_path() -> Path:
    """pydicom's bundled ``CT_small.dcm`` (128x128 16-bit CT, explicit VR LE, ~39 kB)."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file("CT_small.dcm")
    if path is None:
        raise DicomPeerUnavailable("pydicom's test file CT_small.dcm is missing")
    return Path(str(path))


def make_ct_series(
    n: int, out_dir: Path | str, *, studies: int = 1, prefix: str = "ct"
) -> list[Path]:
    """Write ``n`` copies of ``CT_small.dcm`` to ``out_dir``; return their paths in order.

    Every copy gets a new SOP Instance UID (also in the file meta) and
    InstanceNumber ``1..``; the copies are spread over ``studies`` new studies
    (consecutive blocks), one new series per study. Files are
    ``<prefix>_<index:05d>.dcm``; the transfer syntax and pixel data are those of
    the original, the trailing padding element (FFFC,FFFC) is removed.
    """
    import pydicom
    from pydicom.uid import generate_uid

    if n < 0 or studies < 1:
        raise ValueError("n must be >= 0 and studies >= 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ds = pydicom.dcmread(ct_small_path())
    # CT_small ends with a Data Set Trailing Padding element, which dcmtk's storescu
    # drops when it sends: without it, the dataset as written here is byte for byte
    # what goes on the wire.
    if TRAILING_PADDING in ds:
        del ds[TRAILING_PADDING]
    per_study = max(1, -(-n // studies))
    paths: list[Path] = []
    for i in range(n):
        if i % per_study == 0:
            ds.StudyInstanceUID = generate_uid()
            ds.SeriesInstanceUID = generate_uid()
        uid = generate_uid()
        ds.SOPInstanceUID = uid
        ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.InstanceNumber = i + 1
        path = out / f"{prefix}_{i:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
