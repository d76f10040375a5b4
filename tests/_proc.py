"""Run ``eai`` as a subprocess for the fault tests, and speak raw MLLP to it.

Touches: processes (spawns and kills ``eai``), network (127.0.0.1 sockets), files
(routes.yaml, the engine's stderr log).

:class:`EaiProcess` starts ``eai run`` on a fixed listener port (so that a restarted
engine listens where the senders reconnect), waits until the port accepts
connections, appends the engine's stderr to one file across restarts, and always
kills and reaps the process on :meth:`EaiProcess.close`. The MLLP client is
:class:`tests._mllp.MllpSender`.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

from tests._database import on_test_database
from tests.engine_harness import write_routes

T = TypeVar("T")

EAI = [sys.executable, "-c", "from eai.cli import main; main()"]


def listener_port() -> int:
    """A free 127.0.0.1 port BELOW the ephemeral range.

    The engine is restarted on the same port many times; a port from the ephemeral
    range could meanwhile become the local end of an outgoing connection (or a
    self-connect of a sender retrying while nobody listens), and the restart would
    fail to bind.
    """
    low = 32768
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 12000), low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def fixed_routes(tmp: Path, port: int, dcc_port: int, **kw: Any) -> Path:
    """``tests.engine_harness.write_routes`` with the listener on ``port`` instead of 0."""
    path = write_routes(tmp, dcc_port, **kw)
    text = path.read_text()
    assert "bind: 127.0.0.1:0\n" in text
    path.write_text(text.replace("bind: 127.0.0.1:0\n", f"bind: 127.0.0.1:{port}\n"))
    return path


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EAI_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def wait_port(port: int, timeout: float, alive: Any = None) -> bool:
    """True once 127.0.0.1:``port`` accepts a connection; False at ``timeout`` or if not alive()."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.02)
    return False


class EaiProcess:
    """``eai run -c CONFIG`` as a child process; stderr appended to ``log``."""

    def __init__(self, config: Path, port: int, log: Path, *extra: str) -> None:
        self.config = config
        self.port = port
        self.log = log
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self._err: IO[bytes] | None = None
        self.starts = 0

    def spawn(self) -> EaiProcess:
        """Start the process without waiting for it to listen."""
        assert self.proc is None, "already running"
        self._err = open(self.log, "ab")  # noqa: SIM115 - closed in _reap
        self.proc = subprocess.Popen(
            [*EAI, "run", "-c", str(on_test_database(self.config)), *self.extra],
            stdin=subprocess.DEVNULL,
            stdout=self._err,
            stderr=self._err,
            cwd=self.config.parent,
            env=_env(),
        )
        self.starts += 1
        return self

    def start(self, timeout: float = 20.0) -> EaiProcess:
        """Spawn (if needed) and wait until the listener port accepts connections."""
        if self.proc is None:
            self.spawn()
        assert self.proc is not None
        proc = self.proc
        if not wait_port(self.port, timeout, lambda: proc.poll() is None):
            rc = proc.poll()
            self.kill9()
            raise AssertionError(
                f"eai run did not listen on {self.port} within {timeout} s (exit {rc}):\n"
                + self.stderr()[-3000:]
            )
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self._reap(10)

    def terminate(self, timeout: float = 15.0) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds it took). Kills it if it overruns ``timeout``."""
        assert self.proc is not None
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        elapsed = time.monotonic() - t0
        rc = self.proc.poll()
        self.kill9()
        return (rc if rc is not None else -9999), elapsed

    def _reap(self, timeout: float) -> None:
        assert self.proc is not None
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)
        self.proc = None
        if self._err is not None:
            self._err.close()
            self._err = None

    def close(self) -> None:
        """Kill (if still running) and reap; for ``finally`` blocks."""
        self.kill9()

    def stderr(self) -> str:
        return self.log.read_text("utf-8", "replace") if self.log.exists() else ""

    def __enter__(self) -> EaiProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def eai_cli(config: Path, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """``eai ARGS -c CONFIG`` as a subprocess (the config option goes last)."""
    return subprocess.run(
        [*EAI, *args, "-c", str(on_test_database(config))],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=config.parent,
        env=_env(),
        check=False,
    )


def journal(config: Path, *args: str) -> list[dict[str, Any]]:
    """``eai messages list --json --limit 100000 ARGS``: the journaled messages."""
    res = eai_cli(config, "messages", "list", "--json", "--limit", "100000", *args)
    assert res.returncode == 0, res.stderr
    rows: list[dict[str, Any]] = json.loads(res.stdout or "[]")
    return rows


def by_control_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["control_id"]: r for r in rows}


def wait_until(
    condition: Callable[[], T],
    what: str,
    eng: EaiProcess,
    timeout: float = 60.0,
    *,
    poll: float = 0.2,
    tail: int = 3000,
) -> T:
    """Polls ``condition`` every ``poll`` s and returns its first truthy result; past
    ``timeout`` fails naming ``what``, with the last ``tail`` characters of ``eng``'s stderr."""
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}\n{eng.stderr()[-tail:]}"
        time.sleep(poll)


# -- raw MLLP -------------------------------------------------------------------
