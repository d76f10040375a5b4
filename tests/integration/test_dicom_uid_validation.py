"""Every UID the DICOM router keys on is a UID (PS3.5 9.1), or the instance is refused 0xC001.

The SCP's C-STORE path (``DicomListener._on_store``, run in a thread as the
acceptor runs it, without sockets): an instance whose Study or Series Instance
UID is not a UID (``../../x``, a leading zero, 65 characters, a letter) is
answered 0xC001, kept in ``quarantine/`` with its reason and journaled
``rejected``, so it is never routed or forwarded; a valid one is journaled with
its UIDs.

Touches: files (the spool in tmp_path).
"""

from __future__ import annotations

import asyncio
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import UID

from dicom_router import _dimse
from dicom_router._acceptor import StoreRequest
from dicom_router._dimse import Command
from dicom_router.reference import InstanceRef
from dicom_router.scp import STATUS_INVALID_UID, DicomListener, DicomListenerConfig
from eai.messages import IngestResult, JournalEntry
from standins.dicom import ct_small_path

CT = "1.2.840.10008.5.1.4.1.1.2"


class Journal:
    def __init__(self) -> None:
        self.entries: list[JournalEntry] = []

    async def __call__(self, entry: JournalEntry) -> IngestResult:
        self.entries.append(entry)
        return IngestResult(len(self.entries))


def ct_request(study: str | None = None, series: str | None = None) -> StoreRequest:
    """CT_small as a C-STORE-RQ, its Study / Series Instance UID replaced (written as given)."""
    ds = pydicom.dcmread(ct_small_path())
    if study is not None:
        ds["StudyInstanceUID"].value = study
    if series is not None:
        ds["SeriesInstanceUID"].value = series
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    raw = buf.getvalue()
    offset = 132 + 12 + int.from_bytes(raw[140:144], "little")
    data = raw[offset:]
    command = Command(
        command_field=_dimse.C_STORE_RQ,
        data_set_type=0,
        message_id=1,
        affected_sop_class_uid=CT,
        affected_sop_instance_uid=str(ds.SOPInstanceUID),
        priority=0,
    )
    return StoreRequest(
        calling_ae="MODALITY",
        address=("127.0.0.1", 40000),
        transfer_syntax=UID(str(ds.file_meta.TransferSyntaxUID)),
        command=command,
        dataset=[memoryview(data)],
        size=len(data),
    )


def store(tmp_path: Path, requests: list[StoreRequest]) -> tuple[list[int], Journal, Path]:
    journal = Journal()
    config = DicomListenerConfig.model_validate(
        {
            "name": "img",
            "ae_title": "EAI",
            "bind": "127.0.0.1:0",
            "spool_dir": str(tmp_path / "spool"),
            "allowed_callers": [{"ae_title": "MODALITY"}],
        }
    )

    async def scenario() -> list[int]:
        listener = DicomListener(config, journal)
        await listener.start()
        try:
            return [await asyncio.to_thread(listener._on_store, r) for r in requests]
        finally:
            await listener.stop(0.5)

    return asyncio.run(scenario()), journal, tmp_path / "spool"


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI:UserWarning")  # pydicom, on ../
@pytest.mark.filterwarnings("ignore:The value length:UserWarning")  # pydicom, on 65 characters
@pytest.mark.parametrize(
    ("study", "series", "named"),
    [
        ("../../x", None, "Study"),
        ("1.2.840.10008/../../etc", None, "Study"),
        ("1.2.03.4", None, "Study"),
        ("1." + "2" * 64, None, "Study"),
        (None, "../../x", "Series"),
        (None, "1.2.3.4.A", "Series"),
    ],
)
def test_an_instance_keyed_on_a_bad_uid_is_refused_and_quarantined(
    tmp_path: Path, study: str | None, series: str | None, named: str
) -> None:
    statuses, journal, spool = store(tmp_path, [ct_request(study, series)])
    assert statuses == [STATUS_INVALID_UID] == [0xC001]
    [entry] = journal.entries
    assert entry.status == "rejected" and entry.dedup_key is None
    assert entry.reject_reason is not None
    assert entry.reject_reason.startswith("0xC001: ")
    assert f"{named} Instance UID is not a UID" in entry.reject_reason
    assert list((spool / "instances").iterdir()) == []
    kept = sorted(p.name for p in (spool / "quarantine").iterdir())
    assert len(kept) == 2 and kept[1] == kept[0] + ".reason.txt"
    assert f"{named} Instance UID" in (spool / "quarantine" / kept[1]).read_text()
    assert "../" not in entry.reject_reason  # the bad value itself is not echoed


def test_valid_uids_are_journaled_and_keyed_on(tmp_path: Path) -> None:
    ds = pydicom.dcmread(ct_small_path(), stop_before_pixels=True)
    statuses, journal, _spool = store(tmp_path, [ct_request(), ct_request(study="1.2.3.0.4")])
    assert statuses == [0, 0]
    refs = [InstanceRef.from_json(e.payload) for e in journal.entries]
    assert [e.status for e in journal.entries] == ["received", "received"]
    assert refs[0].study_instance_uid == str(ds.StudyInstanceUID)
    assert refs[0].series_instance_uid == str(ds.SeriesInstanceUID)
    assert refs[1].study_instance_uid == "1.2.3.0.4"
