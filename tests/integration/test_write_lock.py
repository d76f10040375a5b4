"""The SQLite journal's write lock across processes (eai/store/_write_lock.py).

A listener in its own process and the engine write one SQLite file: their writers take
turns on ``<journal>-writer.lock`` (``flock``) rather than in SQLite's busy handler.
"""

from __future__ import annotations

import fcntl
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from eai.store import Store
from eai.store._write_lock import WriteLock
from tests.engine_harness import adt_entry

pytestmark = pytest.mark.sqlite_only


def _held_elsewhere(lock_path: Path) -> bool:
    """True when another holder has ``lock_path`` now (a try that does not wait)."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases it if it was taken
    return False


def test_a_second_holder_waits_until_the_first_releases(tmp_path: Path) -> None:
    path = tmp_path / "j.db-writer.lock"
    first = WriteLock(path)
    with first:
        assert _held_elsewhere(path)
    assert not _held_elsewhere(path)
    assert path.stat().st_mode & 0o777 == 0o600
    first.close()


def test_a_killed_holder_releases_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "j.db-writer.lock"
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child takes the lock, says so, and waits to be killed
        lock = WriteLock(path)
        lock.__enter__()
        os.write(write, b"1")
        time.sleep(60)
        os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"1"
    os.close(read)
    assert _held_elsewhere(path)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert not _held_elsewhere(path)


def test_the_engine_writer_takes_the_lock_once_another_process_may_write(
    tmp_path: Path,
) -> None:
    store = Store(f"sqlite:///{tmp_path}/j.db", tmp_path, os.urandom(32).hex())
    store.start()
    lock_path = tmp_path / "j.db-writer.lock"
    outside = WriteLock(lock_path)
    try:
        with outside:  # before access(): the writer does not look at the lock
            assert not store.ingest_blocking(adt_entry("before"), 10).duplicate
        access = store.access()
        attached = Store.attach(access)
        attached.close()
        done = threading.Event()
        with outside:
            t = threading.Thread(
                target=lambda: (store.ingest_blocking(adt_entry("after"), 30), done.set()),
                daemon=True,
            )
            t.start()
            assert not done.wait(0.5), "the writer committed while the lock was held"
        assert done.wait(10)
        t.join(10)
    finally:
        outside.close()
        store.close()
