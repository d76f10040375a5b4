"""The DICOM spool on disk: router-made names, durable writes, quarantine, quota.

Touches: files (spools in tmp_path).
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.data import get_testdata_file

from dicom_router._sealing import retention_tag, sealed_size
from dicom_router.spool import (
    Spool,
    SpoolIntegrityError,
    instance_path,
    is_spool_name,
    read_instance,
    spool_name,
)
from eai.errors import StoreError

TAG = retention_tag("CT1", "1.2.3.4")


OVERHEAD = sealed_size(0, TAG)  # bytes on disk beyond the instance's own


def test_names_are_ours_and_never_derived(tmp_path: Path) -> None:
    names = {spool_name() for _ in range(200)}
    assert len(names) == 200 and all(is_spool_name(n) for n in names)
    for bad in ("../x.dcm", "1.2.3.dcm", "x/../../etc/passwd", "", "20261123T101500-ab.dcm"):
        assert not is_spool_name(bad)
        with pytest.raises(ValueError):
            instance_path(tmp_path, bad)


def test_write_is_durable_and_renamed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    spool = Spool(tmp_path / "spool")
    spool.open()
    f = spool.write([b"abc", memoryview(b"defg")], 7, TAG)
    assert f.path == tmp_path / "spool" / "instances" / f.name
    assert b"abcdefg" not in f.path.read_bytes() and f.size == 7
    assert read_instance(f.path, f.key, f.size, f.sha256) == b"abcdefg"
    assert f.sha256 == hashlib.sha256(b"abcdefg").hexdigest()
    assert stat.S_IMODE(f.path.stat().st_mode) == 0o600
    assert len(synced) >= 2  # the file, then the directory after the rename
    assert list((tmp_path / "spool" / "tmp").iterdir()) == []
    assert spool.used_bytes == f.disk_size == f.path.stat().st_size == 7 + OVERHEAD


def test_open_drops_half_written_files(tmp_path: Path) -> None:
    (tmp_path / "s" / "tmp").mkdir(parents=True)
    (tmp_path / "s" / "tmp" / "leftover").write_bytes(b"x")
    Spool(tmp_path / "s").open()
    assert list((tmp_path / "s" / "tmp").iterdir()) == []


def test_quarantine_keeps_the_file_with_its_reason(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    f = spool.write([b"data"], 4, TAG)
    moved = spool.quarantine(f.name, "dataset cannot be decoded: truncated")
    assert moved == tmp_path / "quarantine" / f.name and b"data" not in moved.read_bytes()
    assert read_instance(moved, f.key, 4, f.sha256) == b"data"  # still sealed, same key
    reason = (tmp_path / "quarantine" / f"{f.name}.reason.txt").read_text()
    assert "truncated" in reason
    assert not f.path.exists()


def test_quota_refuses_and_warns_at_90_percent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path, quota_bytes=100 + 2 * OVERHEAD)  # quota: bytes on disk
    spool.open()
    with caplog.at_level(logging.WARNING, logger="dicom_router.spool"):
        spool.write([b"x" * 80], 80, TAG)
        assert not caplog.records
        spool.write([b"x" * 12], 12, TAG)
        assert any("% of its quota" in r.getMessage() for r in caplog.records)
    with pytest.raises(StoreError, match="quota"):
        spool.write([b"x" * 20], 20, TAG)
    assert len(list((tmp_path / "instances").iterdir())) == 2
    assert list((tmp_path / "tmp").iterdir()) == []


def test_quota_counts_removals_by_others(tmp_path: Path) -> None:
    spool = Spool(tmp_path, quota_bytes=10 + OVERHEAD)
    spool.open()
    f = spool.write([b"x" * 10], 10, TAG)
    f.path.unlink()  # as the engine's retention job does, from another Spool object
    spool._counted_at = 0.0  # the recount interval has passed
    spool.write([b"y" * 10], 10, TAG)


def test_unwritable_spool_is_a_store_error(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    (tmp_path / "tmp").rmdir()
    (tmp_path / "tmp").write_bytes(b"")  # not a directory: unwritable, even for root
    with pytest.raises(StoreError, match="cannot write"):
        spool.write([b"x"], 1, TAG)
    assert spool.used_bytes == 0


def test_write_failure_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = Spool(tmp_path)
    spool.open()

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(StoreError, match="No space left"):
        spool.write([b"abc"], 3, TAG)
    monkeypatch.undo()
    assert (
        list((tmp_path / "tmp").iterdir()) == [] and list((tmp_path / "instances").iterdir()) == []
    )
    assert spool.used_bytes == 0


class _HeldExecutor(Executor):
    """Runs what it is given only when told (the sync thread, paused)."""

    def __init__(self) -> None:
        self.held: list[tuple[Future[Any], Callable[[], Any]]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        self.held.append((fut, lambda: fn(*args, **kwargs)))
        return fut

    def release(self) -> None:
        for fut, call in self.held:
            try:
                fut.set_result(call())
            except BaseException as exc:  # noqa: BLE001 - handed to the waiter
                fut.set_exception(exc)


def test_begin_writes_now_and_makes_durable_on_the_sync_thread(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    sync = _HeldExecutor()
    pending = spool.begin([b"abc", b"defg"], 7, TAG, sync)
    f = pending.spooled
    # written, not yet renamed: nothing in instances/ until the sync thread ran
    assert [p.name for p in (tmp_path / "tmp").iterdir()] == [f.name]
    assert list((tmp_path / "instances").iterdir()) == []
    sync.release()
    assert pending.durable(1) == f
    assert list((tmp_path / "tmp").iterdir()) == []
    assert read_instance(f.path, f.key, f.size, f.sha256) == b"abcdefg"
    assert spool.used_bytes == f.disk_size == f.path.stat().st_size


def test_begin_failure_on_the_sync_thread_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool(tmp_path)
    spool.open()
    with ThreadPoolExecutor(1) as sync:

        def full(fd: int) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "fsync", full)
        pending = spool.begin([b"abc"], 3, TAG, sync)
        with pytest.raises(StoreError, match="No space left"):
            pending.durable(5)
        monkeypatch.undo()
    assert list((tmp_path / "tmp").iterdir()) == []
    assert list((tmp_path / "instances").iterdir()) == []
    assert spool.used_bytes == 0


def test_begin_on_a_shut_down_executor_finishes_inline(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    sync = ThreadPoolExecutor(1)
    sync.shutdown()
    f = spool.begin([b"abc"], 3, TAG, sync).durable(0)  # already done: no wait
    assert f.path.parent == tmp_path / "instances" and f.path.exists()


def test_concurrent_writes_share_directory_syncs(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    names: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(20):
            f = spool.write([b"z" * 100], 100, TAG)
            with lock:
                names.append(f.name)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(names)) == 80 and spool.used_bytes == 80 * (100 + OVERHEAD)


def test_spool_files_hide_the_instance_and_reveal_tampering(tmp_path: Path) -> None:
    """On disk: no patient name, no SOP Instance UID; any change fails, naming the file."""
    path = get_testdata_file("CT_small.dcm")
    assert path is not None
    data = Path(path).read_bytes()
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    name, uid = str(ds.PatientName).encode(), str(ds.SOPInstanceUID).encode()
    assert name in data and uid in data
    spool = Spool(tmp_path)
    spool.open()
    f = spool.write(
        [data[:100], memoryview(data)[100:]], len(data), retention_tag("CT1", uid.decode())
    )
    sealed = f.path.read_bytes()
    assert name not in sealed and uid not in sealed and b"DICM" not in sealed
    assert str(ds.StudyInstanceUID).encode() not in sealed
    assert read_instance(f.path, f.key, f.size, f.sha256) == data
    for i in (len(sealed) // 2, len(sealed) - 1, 20):  # pixel data, tag, retention tag
        f.path.write_bytes(sealed[:i] + bytes([sealed[i] ^ 1]) + sealed[i + 1 :])
        with pytest.raises(SpoolIntegrityError, match=f"{f.name} cannot be decrypted"):
            read_instance(f.path, f.key, f.size, f.sha256)
    f.path.write_bytes(sealed[:-100])
    with pytest.raises(SpoolIntegrityError, match="cannot be decrypted"):
        read_instance(f.path, f.key, f.size, f.sha256)
    other = tmp_path / "instances" / spool_name()
    other.write_bytes(sealed)  # renamed: bound to its name
    with pytest.raises(SpoolIntegrityError, match="cannot be decrypted"):
        read_instance(other, f.key, f.size, f.sha256)
    with pytest.raises(SpoolIntegrityError, match="no key"):
        read_instance(other, None, f.size, f.sha256)


def test_files_spooled_in_clear_before_encryption_are_read_if_unchanged(tmp_path: Path) -> None:
    legacy = tmp_path / spool_name()
    legacy.write_bytes(b"part10")
    digest = hashlib.sha256(b"part10").hexdigest()
    assert read_instance(legacy, None, 6, digest) == b"part10"
    legacy.write_bytes(b"Part10")
    with pytest.raises(SpoolIntegrityError, match="changed since it was received"):
        read_instance(legacy, None, 6, digest)
