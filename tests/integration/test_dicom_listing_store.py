"""``eai.store.list_messages`` on DICOM references journaled directly (SQLite file).

The end-to-end test (``test_dicom_messages_cli``) covers what a real engine journals;
this one covers what it cannot cheaply: ``--study`` scanning across several pages,
``oldest_first``, and payloads that are not readable references (a row never fails
the listing).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import update

from eai import registry
from eai import store as read
from eai.messages import JournalEntry
from eai.store import Store, insert_entries
from eai.store.schema import messages
from tests._database import database_url

pytestmark = pytest.mark.integration

KEY = "00" * 32
UIDS = ("study_instance_uid", "series_instance_uid", "sop_instance_uid")
NONE: dict[str, str | None] = dict.fromkeys(UIDS)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(database_url(tmp_path / "eai.db"), tmp_path, KEY)
    try:
        yield s
    finally:
        s.engine.dispose()


def _ref(study: str, series: str, sop: str) -> bytes:
    return json.dumps(
        {
            "spool_dir": "/spool",
            "spool": "x.dcm",
            "size": 1,
            "sha256": "0" * 64,
            "sop_class_uid": "1.2.840.10008.5.1.4.1.1.2",
            "sop_instance_uid": sop,
            "study_instance_uid": study,
            "series_instance_uid": series,
            "transfer_syntax": "1.2.840.10008.1.2.1",
            "calling_ae": "CT1",
            "peer": "127.0.0.1:1",
            "attrs": {"Modality": "CT", "PatientID": "SECRET-PID"},
        }
    ).encode()


def _journal(store: Store, entries: list[JournalEntry]) -> list[int]:
    with store.engine.begin() as conn:
        return [r.message_id for r in insert_entries(conn, store.cipher, entries)]


def _dicom(payload: bytes, sop: str, status: str = "received") -> JournalEntry:
    return JournalEntry(
        listener="img",
        payload=payload,
        received_at=datetime.now(UTC),
        status=status,  # type: ignore[arg-type]
        content_type="dicom",
        control_id=sop,
        message_type="DICOM^CT",
    )


def test_study_scan_pages_limits_and_unreadable_payloads(store: Store) -> None:
    entries = []
    for i in range(10):  # studies A, B alternating; A's instances 0, 2, 4, 6, 8
        study = "1.2.3.A" if i % 2 == 0 else "1.2.3.B"
        entries.append(_dicom(_ref(study, f"{study}.1", f"1.2.3.{i}"), f"1.2.3.{i}"))
    entries.append(_dicom(b"not json", "1.2.3.bad"))
    entries.append(_dicom(_ref("", "", "1.2.3.refused"), "1.2.3.refused", "rejected"))
    entries.append(
        JournalEntry(
            listener="adt",
            payload=b"MSH|^~\\&|A|CHU-X|||||ADT^A01|9|P|2.5\r",
            received_at=datetime.now(UTC),
            control_id="9",
            message_type="ADT^A01",
        )
    )
    ids = _journal(store, entries)

    def sops(study: str | None = None, **kw: object) -> list[str | None]:
        where = None if study is None else ("study_instance_uid", study)
        views = read.list_messages(
            store.engine,
            store.cipher,
            where_field=where,
            scan_page=3,
            **kw,  # type: ignore[arg-type]
        )
        return [v.fields["sop_instance_uid"] for v in views]

    a = [f"1.2.3.{i}" for i in (8, 6, 4, 2, 0)]
    assert sops(study="1.2.3.A") == a
    assert sops(study=" 1.2.3.A ") == a
    assert sops(study="1.2.3.A", limit=2) == a[:2]
    assert sops(study="1.2.3.A", oldest_first=True, limit=4) == a[::-1][:4]
    assert sops(study="1.2.3.A", status="rejected") == []
    assert sops(study="1.2.3.B", ids=ids[:4]) == ["1.2.3.3", "1.2.3.1"]
    assert sops(study="1.2.3.C") == []

    views = read.list_messages(store.engine, store.cipher, limit=None, scan_page=3)
    hl7, refused, bad = views[0], views[1], views[2]
    assert hl7.content_type == "hl7v2" and hl7.fields == NONE
    assert refused.fields == {**NONE, "sop_instance_uid": "1.2.3.refused"}
    assert bad.fields == NONE and bad.control_id == "1.2.3.bad"
    assert views[3].to_json()["study_instance_uid"] == "1.2.3.B"
    assert "SECRET-PID" not in json.dumps([v.to_json() for v in views])
    # Replay's selection needs no decryption.
    quick = read.list_messages(store.engine, store.cipher, limit=None, with_fields=False)
    assert [v.id for v in quick] == [v.id for v in views]
    assert all(v.fields == NONE for v in quick)

    # A payload sealed with another key (or damaged) leaves the row's UIDs unknown.
    with store.engine.begin() as conn:
        conn.execute(update(messages).where(messages.c.id == ids[0]).values(payload=b"\x01junk"))
    assert sops(ids=[ids[0], ids[2]]) == ["1.2.3.2", None]
    assert read.message_detail(store.engine, ids[2], store.cipher).fields["study_instance_uid"] == (
        "1.2.3.A"
    )
    assert read.message_detail(store.engine, ids[2]).fields == NONE


def test_listing_fields_come_from_the_registered_contributor(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any content type may add fields (eai.registry.ListingSpec): every row carries every
    field (null when unknown or of another type), ``where_field`` scans only the types having
    the field, and a contributor that cannot read a payload leaves its fields null."""

    def read_note(payload: bytes) -> dict[str, str | None]:
        if not payload.startswith(b"note:"):
            raise ValueError("not a note")
        return {"note_id": payload[5:].decode(), "other": "never listed"}

    spec = registry.ListingSpec("x-note", ("note_id",), read_note, lambda f: f"note {f['note_id']}")
    monkeypatch.setitem(registry._listings, "x-note", spec)  # noqa: SLF001 - undone after
    notes = [
        JournalEntry(
            listener="notes",
            payload=payload,
            received_at=datetime.now(UTC),
            content_type="x-note",
            control_id=f"n{i}",
            message_type="NOTE",
        )
        for i, payload in enumerate((b"note:N-1", b"garbage", b"note:N-2"))
    ]
    ids = _journal(store, [*notes, _dicom(_ref("1.2.3.A", "1.2.3.A.1", "1.2.3.9"), "1.2.3.9")])
    views = read.list_messages(store.engine, store.cipher, limit=None, oldest_first=True)
    assert [v.fields for v in views] == [
        {**NONE, "note_id": "N-1"},
        {**NONE, "note_id": None},
        {**NONE, "note_id": "N-2"},
        {**dict(zip(UIDS, ("1.2.3.A", "1.2.3.A.1", "1.2.3.9"), strict=True)), "note_id": None},
    ]
    assert views[0].to_json()["note_id"] == "N-1" and "other" not in views[0].to_json()
    found = read.list_messages(store.engine, store.cipher, where_field=("note_id", "N-2"))
    assert [v.id for v in found] == [ids[2]]
    assert read.list_messages(store.engine, store.cipher, where_field=("nothing", "N-2")) == []
    assert read.message_detail(store.engine, ids[0], store.cipher).fields["note_id"] == "N-1"
