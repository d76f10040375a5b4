"""A throwaway, real PostgreSQL server for tests.

Uses Debian's server binaries (``/usr/lib/postgresql/<ver>/bin/{initdb,pg_ctl,postgres}``,
package ``postgresql``; ``scripts/install-test-peers.sh`` installs it). The server:

* lives in a fresh temporary directory (data dir, unix socket dir, log file) that is
  removed again on :meth:`PostgresServer.stop`;
* listens on 127.0.0.1 only, on a port the OS reported free (retried if it is taken
  between the check and the bind);
* trusts every connection (superuser ``postgres``, no password);
* keeps PostgreSQL's durability defaults (``fsync``, ``synchronous_commit``,
  ``full_page_writes`` all on); only ``shared_buffers`` is made small. (``initdb`` runs
  with ``--no-sync``, which only skips flushing the freshly created template files and
  has no effect on the running server.)

PostgreSQL refuses to run as root: when the tests run as root, the data directory is
given to the ``postgres`` system user (created by the Debian package) and
``initdb``/``pg_ctl`` run as that user.

This module does not depend on pytest; ``tests/conftest.py`` wraps it in fixtures.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg
from psycopg import sql

from standins.net import free_port

PG_LIB = Path("/usr/lib/postgresql")
SUPERUSER = "postgres"
HOST = "127.0.0.1"
#: Settings written to the server's configuration besides listen address, port and
#: socket dir. Durability settings are deliberately left at PostgreSQL's defaults.
SETTINGS: dict[str, str] = {
    "shared_buffers": "'32MB'",
    "max_connections": "100",
    "log_min_messages": "warning",
    "log_line_prefix": "'%m [%p] '",
}
_COMMAND_TIMEOUT = 120.0
_START_ATTEMPTS = 5
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries are not installed (or not usable)."""


class PostgresStartError(RuntimeError):
    """initdb or the server failed; the message carries the tail of its log."""


def find_pg_bindir() -> Path:
    """Return the newest ``/usr/lib/postgresql/<ver>/bin`` holding the server binaries.

    ``EAI_PG_BINDIR`` overrides the search.
    """
    override = os.environ.get("EAI_PG_BINDIR")
    candidates: list[Path]
    if override:
        candidates = [Path(override)]
    else:
        versions = []
        if PG_LIB.is_dir():
            for entry in PG_LIB.iterdir():
                with contextlib.suppress(ValueError):
                    versions.append((float(entry.name), entry / "bin"))
        candidates = [path for _, path in sorted(versions, reverse=True)]
    for bindir in candidates:
        if all(os.access(bindir / name, os.X_OK) for name in ("initdb", "pg_ctl", "postgres")):
            return bindir
    where = override or f"{PG_LIB}/<version>/bin"
    raise PostgresUnavailable(
        f"PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in {where}. "
        "Install them with `apt-get install postgresql` (as root), or run "
        "`scripts/install-test-peers.sh` / `make test`, which do it for you."
    )


def _traversable_by_others(path: Path) -> bool:
    for part in [path, *path.parents]:
        if not part.stat().st_mode & stat.S_IXOTH:
            return False
    return True


def _tmp_root(as_other_user: bool) -> Path:
    """A directory for the server's files: short enough for a unix socket path and,
    when the server runs as another user, reachable by that user."""
    root = Path(tempfile.gettempdir())
    if len(str(root)) > 60 or (as_other_user and not _traversable_by_others(root)):
        root = Path("/tmp")
    return root


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


class PostgresServer:
    """One PostgreSQL server in its own temporary directory.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. After
    :meth:`stop` the server can't be started again (its directory is gone); use
    :meth:`restart` to stop and start it keeping the data.
    """

    def __init__(self, bindir: Path | None = None) -> None:
        self.bindir = bindir if bindir is not None else find_pg_bindir()
        self._run_as_postgres = os.geteuid() == 0
        self._uid: int | None = None
        self._gid: int | None = None
        if self._run_as_postgres:
            try:
                pw = pwd.getpwnam(SUPERUSER)
            except KeyError as exc:
                raise PostgresUnavailable(
                    "running as root, but there is no `postgres` system user to run "
                    "PostgreSQL as (the Debian package `postgresql` creates it)"
                ) from exc
            self._uid, self._gid = pw.pw_uid, pw.pw_gid
        self.base: Path | None = None
        self.port: int | None = None

    # -- paths --------------------------------------------------------------------
    @property
    def _base(self) -> Path:
        if self.base is None:
            raise RuntimeError("PostgresServer has not been started")
        return self.base

    @property
    def datadir(self) -> Path:
        return self._base / "data"

    @property
    def socket_dir(self) -> Path:
        return self._base / "sock"

    @property
    def log_path(self) -> Path:
        return self._base / "postgres.log"

    # -- connection details -------------------------------------------------------
    def _port(self) -> int:
        if self.port is None:
            raise RuntimeError("PostgresServer has not been started")
        return self.port

    def url(self, dbname: str = "postgres") -> str:
        """SQLAlchemy URL (psycopg 3 driver) for ``dbname``."""
        return f"postgresql+psycopg://{SUPERUSER}@{HOST}:{self._port()}/{dbname}"

    def dsn(self, dbname: str = "postgres") -> str:
        """libpq URI for ``dbname`` (for ``psycopg.connect``)."""
        return f"postgresql://{SUPERUSER}@{HOST}:{self._port()}/{dbname}"

    @contextlib.contextmanager
    def connect(self, dbname: str = "postgres") -> Iterator[psycopg.Connection[Any]]:
        """An autocommit psycopg connection, closed on exit."""
        with psycopg.connect(self.dsn(dbname), autocommit=True, connect_timeout=10) as conn:
            yield conn

    def create_database(self, name: str | None = None) -> str:
        """Create a database (a unique name unless given) and return its name."""
        name = name or f"eai_t_{uuid.uuid4().hex[:16]}"
        if not _IDENT.match(name):
            raise ValueError(f"not a plain lower-case database name: {name!r}")
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    def drop_database(self, name: str) -> None:
        """Drop a database, closing any connections still open to it."""
        with self.connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    # -- processes ----------------------------------------------------------------
    def _run(
        self, args: Sequence[str | os.PathLike[str]], *, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        extra: dict[str, Any] = {}
        if self._run_as_postgres:
            pw = pwd.getpwnam(SUPERUSER)
            env.update(HOME=pw.pw_dir, USER=SUPERUSER, LOGNAME=SUPERUSER)
            extra = {
                "user": self._uid,
                "group": self._gid,
                "extra_groups": [g.gr_gid for g in grp.getgrall() if SUPERUSER in g.gr_mem],
            }
        proc = subprocess.run(
            [str(a) for a in args],
            cwd=self._base,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_COMMAND_TIMEOUT,
            # Own session: a Ctrl-C in the terminal must not reach the postmaster
            # (it would shut down under the tests); teardown stops it.
            start_new_session=True,
            check=False,
            **extra,
        )
        if check and proc.returncode != 0:
            raise PostgresStartError(
                f"{' '.join(str(a) for a in args)} exited {proc.returncode}\n"
                f"{proc.stdout}{proc.stderr}\n--- server log ---\n{_tail(self.log_path)}"
            )
        return proc

    def _own(self, path: Path) -> None:
        if self._run_as_postgres:
            assert self._uid is not None and self._gid is not None
            os.chown(path, self._uid, self._gid)

    def _write_conf(self, port: int) -> None:
        settings = {
            "listen_addresses": f"'{HOST}'",
            "port": str(port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            **SETTINGS,
        }
        conf = self.datadir / "eai_test.conf"
        conf.write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
        conf.chmod(0o600)
        self._own(conf)

    def start(self) -> PostgresServer:
        """initdb a fresh cluster and start the server; returns self."""
        if self.base is not None:
            raise RuntimeError("PostgresServer already started")
        self.base = Path(tempfile.mkdtemp(prefix="eai-pg-", dir=_tmp_root(self._run_as_postgres)))
        try:
            self.socket_dir.mkdir(mode=0o700)
            for path in (self._base, self.socket_dir):
                self._own(path)
            self.log_path.touch(mode=0o600)
            self._own(self.log_path)
            self._run(
                [
                    self.bindir / "initdb",
                    "--pgdata",
                    self.datadir,
                    "--username",
                    SUPERUSER,
                    "--auth",
                    "trust",
                    "--encoding",
                    "UTF8",
                    "--no-locale",
                    "--no-sync",
                ]
            )
            with (self.datadir / "postgresql.conf").open("a") as fh:
                fh.write("\n# added by tests/_postgres.py\ninclude 'eai_test.conf'\n")
            self._start_on_free_port()
        except BaseException:
            self._kill_and_remove()
            raise
        return self

    def _start_on_free_port(self) -> None:
        last: PostgresStartError | None = None
        for _ in range(_START_ATTEMPTS):
            port = free_port(HOST)
            self._write_conf(port)
            try:
                self._pg_ctl_start()
            except PostgresStartError as exc:
                last = exc
                if "could not bind" in str(exc) or "already in use" in str(exc):
                    continue  # lost the race for the port: try another
                raise
            self.port = port
            return
        assert last is not None
        raise last

    def _pg_ctl_start(self) -> None:
        self._run(
            [
                self.bindir / "pg_ctl",
                "start",
                "--pgdata",
                self.datadir,
                "--log",
                self.log_path,
                "--wait",
                "--timeout",
                "60",
            ]
        )

    def _pg_ctl_stop(self, mode: str = "fast") -> bool:
        proc = self._run(
            [
                self.bindir / "pg_ctl",
                "stop",
                "--pgdata",
                self.datadir,
                "--mode",
                mode,
                "--wait",
                "--timeout",
                "60",
            ],
            check=False,
        )
        return proc.returncode == 0

    def is_running(self) -> bool:
        if self.base is None:
            return False
        proc = self._run([self.bindir / "pg_ctl", "status", "--pgdata", self.datadir], check=False)
        return proc.returncode == 0

    def restart(self, mode: str = "fast") -> None:
        """Stop the server (``mode``: smart, fast or immediate) and start it again on
        the same port, keeping the data (for fault tests)."""
        self._pg_ctl_stop(mode)
        self._pg_ctl_start()

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its directory."""
        if self.base is None:
            return
        self._kill_and_remove()

    def _postmaster_pid(self) -> int | None:
        try:
            first = (self.datadir / "postmaster.pid").read_text().splitlines()[0]
            return int(first)
        except (OSError, IndexError, ValueError):
            return None

    def _kill_and_remove(self) -> None:
        base = self.base
        if base is None:
            return
        try:
            if (self.datadir / "postmaster.pid").exists() and not self._pg_ctl_stop("fast"):
                self._pg_ctl_stop("immediate")
            pid = self._postmaster_pid()
            if pid is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                    deadline = time.monotonic() + 10
                    while time.monotonic() < deadline:
                        os.kill(pid, 0)
                        time.sleep(0.05)
        finally:
            shutil.rmtree(base, ignore_errors=True)
            self.base = None
            self.port = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
