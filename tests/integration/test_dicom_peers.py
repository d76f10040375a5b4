"""The real DICOM peers of the test suite work (dcmtk storescp/storescu/echoscu, Orthanc).

These only prove the harness in ``standins/dicom/``; the router's own tests
use it to talk to real implementations.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from standins.dicom import (
    TIMEOUT_RC,
    Orthanc,
    StoreScp,
    ct_small_path,
    dataset_bytes,
    echoscu,
    is_listening,
    make_ct_series,
    storescu,
)

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"


@pytest.fixture
def store_scp(tmp_path: Path) -> Iterator[StoreScp]:
    with StoreScp(tmp_path / "scp-out") as scp:
        yield scp


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    with Orthanc(tmp_path_factory.mktemp("orthanc")) as server:
        yield server


@pytest.fixture(scope="module")
def ct_series(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return make_ct_series(5, tmp_path_factory.mktemp("ct"))


def test_make_ct_series_new_uids(tmp_path: Path) -> None:
    paths = make_ct_series(6, tmp_path, studies=2)
    assert [p.name for p in paths] == [f"ct_{i:05d}.dcm" for i in range(6)]
    original = pydicom.dcmread(ct_small_path())
    copies = [pydicom.dcmread(p) for p in paths]
    sops = {c.SOPInstanceUID for c in copies}
    assert len(sops) == 6 and original.SOPInstanceUID not in sops
    assert all(c.file_meta.MediaStorageSOPInstanceUID == c.SOPInstanceUID for c in copies)
    studies = [c.StudyInstanceUID for c in copies]
    assert len(set(studies[:3])) == 1 and len(set(studies[3:])) == 1
    assert studies[0] != studies[3] != original.StudyInstanceUID
    assert len({c.SeriesInstanceUID for c in copies}) == 2
    assert [int(c.InstanceNumber) for c in copies] == list(range(1, 7))
    assert all(c.PixelData == original.PixelData for c in copies)
    assert all(0xFFFCFFFC not in c for c in copies)  # storescu would not send it
    assert copies[0].file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID


def test_echoscu_storescp(store_scp: StoreScp) -> None:
    rc, out = echoscu(HOST, store_scp.port, "STORESCP")
    assert rc == 0, out


def test_storescu_to_storescp(store_scp: StoreScp, ct_series: list[Path]) -> None:
    rc, out = storescu(HOST, store_scp.port, ct_series, "STORESCP")
    assert rc == 0, out
    received = store_scp.wait_files(len(ct_series), timeout=30)
    assert len(received) == len(ct_series)
    # Bit-preserving: each received file carries the dataset bytes as sent.
    sent = {pydicom.dcmread(p).SOPInstanceUID: p for p in ct_series}
    for path in received:
        original = sent.pop(pydicom.dcmread(path).SOPInstanceUID)
        assert dataset_bytes(path) == dataset_bytes(original)
    assert not sent


def test_dataset_bytes(ct_series: list[Path]) -> None:
    ds = pydicom.dcmread(ct_series[0])
    body = dataset_bytes(ct_series[0])
    assert body.startswith(b"\x08\x00")  # the first element of the dataset, group 0008
    assert body.endswith(ds.PixelData)  # no trailing padding after the pixel data
    assert len(ct_series[0].read_bytes()) > len(body) + 132


def test_storescp_keeps_duplicates_and_restarts(store_scp: StoreScp, ct_series: list[Path]) -> None:
    rc, out = storescu(HOST, store_scp.port, ct_series[:1] * 2, "STORESCP")
    assert rc == 0, out
    assert len(store_scp.wait_files(2)) == 2  # unique file names: the repeat is visible
    port = store_scp.port
    store_scp.stop()
    assert not is_listening(port)
    rc, out = echoscu(HOST, port, "STORESCP", timeout=20)
    assert rc != 0
    store_scp.restart()
    assert store_scp.port == port
    rc, out = echoscu(HOST, port, "STORESCP")
    assert rc == 0, out


def test_echoscu_orthanc(orthanc: Orthanc) -> None:
    rc, out = echoscu(HOST, orthanc.port, "ORTHANC")
    assert rc == 0, out


def test_storescu_to_orthanc(orthanc: Orthanc, ct_series: list[Path]) -> None:
    before = orthanc.instances_count()
    rc, out = storescu(HOST, orthanc.port, ct_series, "ORTHANC")
    assert rc == 0, out
    assert orthanc.instances_count() == before + len(ct_series)
    sops = {orthanc.instance_tags(i)["SOPInstanceUID"] for i in orthanc.instances()}
    assert {pydicom.dcmread(p).SOPInstanceUID for p in ct_series} <= sops


def test_orthanc_sends_to_storescp(tmp_path: Path, ct_series: list[Path]) -> None:
    with StoreScp(tmp_path / "out", ae_title="DEST") as scp:
        with Orthanc(tmp_path / "orthanc", modalities={"dest": ("DEST", HOST, scp.port)}) as o:
            ids = [o.upload(p) for p in ct_series[:2]]
            o.store_to("dest", ids)
        assert len(scp.wait_files(2)) == 2


def test_storescu_timeout(tmp_path: Path, ct_series: list[Path]) -> None:
    # storescp sleeping during the store: storescu is killed at its own timeout.
    with StoreScp(tmp_path / "out", extra_args=("--sleep-during", "30")) as scp:
        rc, out = storescu(HOST, scp.port, ct_series[:1], "STORESCP", timeout=2)
    assert rc == TIMEOUT_RC
    assert "timeout" in out
