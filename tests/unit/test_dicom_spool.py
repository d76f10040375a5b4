"""The DICOM spool: router-made names, durable writes, quarantine, quota; the framing check."""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import threading
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from dicom_router._framing import DatasetFramingError, check_framing, inflate
from dicom_router.spool import Spool, instance_path, is_spool_name, spool_name
from eai.errors import StoreError
from tests._dicom_peers import dataset_bytes


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
    f = spool.write([b"abc", memoryview(b"defg")], 7)
    assert f.path == tmp_path / "spool" / "instances" / f.name
    assert f.path.read_bytes() == b"abcdefg" and f.size == 7
    assert f.sha256 == hashlib.sha256(b"abcdefg").hexdigest()
    assert stat.S_IMODE(f.path.stat().st_mode) == 0o600
    assert len(synced) >= 2  # the file, then the directory after the rename
    assert list((tmp_path / "spool" / "tmp").iterdir()) == []
    assert spool.used_bytes == 7


def test_open_drops_half_written_files(tmp_path: Path) -> None:
    (tmp_path / "s" / "tmp").mkdir(parents=True)
    (tmp_path / "s" / "tmp" / "leftover").write_bytes(b"x")
    Spool(tmp_path / "s").open()
    assert list((tmp_path / "s" / "tmp").iterdir()) == []


def test_quarantine_keeps_the_file_with_its_reason(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    f = spool.write([b"data"], 4)
    moved = spool.quarantine(f.name, "dataset cannot be decoded: truncated")
    assert moved == tmp_path / "quarantine" / f.name and moved.read_bytes() == b"data"
    reason = (tmp_path / "quarantine" / f"{f.name}.reason.txt").read_text()
    assert "truncated" in reason
    assert not f.path.exists()


def test_quota_refuses_and_warns_at_90_percent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path, quota_bytes=100)
    spool.open()
    with caplog.at_level(logging.WARNING, logger="dicom_router.spool"):
        spool.write([b"x" * 80], 80)
        assert not caplog.records
        spool.write([b"x" * 12], 12)
        assert any("92% of its quota" in r.getMessage() for r in caplog.records)
    with pytest.raises(StoreError, match="quota"):
        spool.write([b"x" * 20], 20)
    assert len(list((tmp_path / "instances").iterdir())) == 2
    assert list((tmp_path / "tmp").iterdir()) == []


def test_quota_counts_removals_by_others(tmp_path: Path) -> None:
    spool = Spool(tmp_path, quota_bytes=10)
    spool.open()
    f = spool.write([b"x" * 10], 10)
    f.path.unlink()  # as the engine's retention job does, from another Spool object
    spool._counted_at = 0.0  # the recount interval has passed
    spool.write([b"y" * 10], 10)


def test_unwritable_spool_is_a_store_error(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    (tmp_path / "tmp").rmdir()
    (tmp_path / "tmp").write_bytes(b"")  # not a directory: unwritable, even for root
    with pytest.raises(StoreError, match="cannot write"):
        spool.write([b"x"], 1)
    assert spool.used_bytes == 0


def test_write_failure_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = Spool(tmp_path)
    spool.open()

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(StoreError, match="No space left"):
        spool.write([b"abc"], 3)
    monkeypatch.undo()
    assert (
        list((tmp_path / "tmp").iterdir()) == [] and list((tmp_path / "instances").iterdir()) == []
    )
    assert spool.used_bytes == 0


def test_concurrent_writes_share_directory_syncs(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    names: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(20):
            f = spool.write([b"z" * 100], 100)
            with lock:
                names.append(f.name)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(names)) == 80 and spool.used_bytes == 8000


# -- framing --------------------------------------------------------------------------


def _body(name: str) -> bytes:
    path = get_testdata_file(name)
    assert path is not None
    return dataset_bytes(path)


@pytest.mark.parametrize(
    ("name", "implicit", "little"),
    [
        ("CT_small.dcm", False, True),
        ("MR_small_implicit.dcm", True, True),
        ("MR_small_bigendian.dcm", False, False),
        ("JPEG2000.dcm", False, True),  # encapsulated pixel data
        ("reportsi.dcm", False, True),  # undefined-length sequences
    ],
)
def test_framing_accepts_whole_datasets_and_refuses_cuts(
    name: str, implicit: bool, little: bool
) -> None:
    body = _body(name)
    assert check_framing(body, implicit_vr=implicit, little_endian=little) > 5
    for cut in (len(body) - 1, len(body) - 3, len(body) // 2 + 1):
        with pytest.raises(DatasetFramingError):
            check_framing(body[:cut], implicit_vr=implicit, little_endian=little)


def test_framing_refuses_pydicoms_truncated_files() -> None:
    for name, implicit in (("MR_truncated.dcm", False), ("rtplan_truncated.dcm", True)):
        with pytest.raises(DatasetFramingError, match="truncated"):
            check_framing(_body(name), implicit_vr=implicit, little_endian=True)


def test_framing_refuses_garbage_and_bombs() -> None:
    with pytest.raises(DatasetFramingError, match="explicit VR"):
        check_framing(
            b"\x08\x00\x16\x00\x00\x00\x04\x00abcd", implicit_vr=False, little_endian=True
        )
    with pytest.raises(DatasetFramingError):
        inflate(b"not deflate data")
    import zlib

    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    bomb = c.compress(b"\0" * 5_000_000) + c.flush()
    with pytest.raises(DatasetFramingError, match="more than"):
        inflate(bomb, limit=1_000_000)
