"""The journal, its key and the data dir are private; the break-glass read is root's alone;
the admin socket's peer is who the kernel says (issue 16, point 3)."""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from eai.admin import AdminRefused, break_glass_read, caller_of, local_caller
from eai.config import Config
from eai.store import Store


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The usual 022 umask, under which files are created 0644 unless asked otherwise."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _store(data_dir: Path) -> Store:
    return Store(f"sqlite:///{data_dir}/eai.db", data_dir)


@pytest.mark.sqlite_only  # the modes of the SQLite file and its WAL
def test_new_journal_files_and_key_are_0600_and_the_data_dir_0700(tmp_path, loose_umask):
    var = tmp_path / "var"
    store = _store(var)
    try:
        with store.engine.begin() as conn:  # a write: SQLite makes the -wal and -shm files
            conn.execute(text("INSERT INTO eai_meta (key, value) VALUES ('x', 'y')"))
        assert _mode(var) == 0o700
        for name in ("eai.db", "eai.db-wal", "eai.db-shm", "eai.key"):
            assert _mode(var / name) == 0o600, name
    finally:
        store.engine.dispose()


@pytest.mark.sqlite_only  # the modes of the SQLite file and its WAL
def test_files_of_an_older_install_are_tightened(tmp_path, loose_umask):
    var = tmp_path / "var"
    _store(var).engine.dispose()
    for name in ("eai.db", "eai.key"):
        (var / name).chmod(0o644)
    store = _store(var)
    try:
        with store.engine.begin() as conn:
            conn.execute(text("INSERT INTO eai_meta (key, value) VALUES ('x', 'y')"))
        # SQLite gives -wal and -shm the main file's mode: tightened first, so 0600 too
        for name in ("eai.db", "eai.db-wal", "eai.db-shm", "eai.key"):
            assert _mode(var / name) == 0o600, name
    finally:
        store.engine.dispose()


def test_break_glass_refused_to_anyone_but_root_before_the_key_is_read(tmp_path):
    var = tmp_path / "var"
    config = Config.model_validate({"engine": {"data_dir": str(var)}})
    with pytest.raises(AdminRefused, match="root only"):
        break_glass_read(config, 1, "curious", None, uid=1000)
    assert not var.exists()  # neither the key nor the journal was touched


def test_break_glass_uid_is_the_real_uid_not_the_environment(monkeypatch):
    monkeypatch.setenv("USER", "root")
    monkeypatch.setenv("LOGNAME", "root")
    monkeypatch.setattr(os, "getuid", lambda: 4242)
    me = local_caller()
    assert me.uid == 4242 and me.user != "root"


def test_peer_is_identified_by_the_kernel(monkeypatch):
    monkeypatch.setenv("USER", "nobody")
    a, b = socket.socketpair(socket.AF_UNIX)
    with a, b:
        peer = caller_of(a)
    assert (peer.pid, peer.uid, peer.gid) == (os.getpid(), os.getuid(), os.getgid())
    assert peer.user != "nobody" or os.getuid() == 65534
