"""A real rsyslog receiving syslog over TLS (RFC 5425) for the audit forwarding tests.

Touches: processes (starts and stops ``rsyslogd``), files (its config, pid file and
output in the directory given), network (it listens on 127.0.0.1).

Debian's ``rsyslog`` with ``rsyslog-gnutls`` (``scripts/install-test-peers.sh``):
``imtcp`` with the ``gtls`` stream driver, the server certificate from
``tests/_pki.py``; every message received is written, raw, one per line, to
``received.log`` (``omfile``). ``auth="anon"`` accepts any client; ``"x509/name"``
requires a client certificate from the CA whose name is in ``permitted``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests._pki import Pki
from tests._proc import listener_port

__all__ = ["RSYSLOGD", "Rsyslog"]

RSYSLOGD = Path("/usr/sbin/rsyslogd")

_CONF = """\
global(workDirectory="{work}"
       DefaultNetstreamDriverCAFile="{ca}"
       DefaultNetstreamDriverCertFile="{cert}"
       DefaultNetstreamDriverKeyFile="{key}")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1"
       StreamDriver.AuthMode="{auth}"{permitted})
input(type="imtcp" port="{port}" address="127.0.0.1")
template(name="raw" type="string" string="%rawmsg%\\n")
action(type="omfile" file="{out}" template="raw")
"""


class Rsyslog:
    """``start()`` / ``stop()`` (again and again, on the same port); ``lines()``."""

    def __init__(
        self, directory: Path, pki: Pki, *, auth: str = "anon", permitted: str = ""
    ) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = listener_port()  # below the ephemeral range: restarted on it
        self.out = directory / "received.log"
        self.conf = directory / "rsyslog.conf"
        self.pidfile = directory / "rsyslogd.pid"
        self.conf.write_text(
            _CONF.format(
                work=directory,
                ca=pki.ca,
                cert=pki.server_cert,
                key=pki.server_key,
                auth=auth,
                permitted=f' PermittedPeer=["{permitted}"]' if permitted else "",
                port=self.port,
                out=self.out,
            )
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = directory / "rsyslogd.stderr"

    def start(self, timeout: float = 15.0) -> Rsyslog:
        assert self.proc is None
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen(
                [str(RSYSLOGD), "-n", "-f", str(self.conf), "-i", str(self.pidfile)],
                stdout=err,
                stderr=err,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rsyslogd exited: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("rsyslogd did not listen in time")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        self.pidfile.unlink(missing_ok=True)

    def lines(self) -> list[str]:
        try:
            return self.out.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []

    def wait_for(self, predicate: Callable[[list[str]], bool], timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.lines()):
                return True
            time.sleep(0.1)
        return predicate(self.lines())

    def __enter__(self) -> Rsyslog:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
