"""``eai messages list`` / ``show`` on DICOM instances received over a real socket.

dcmtk's storescu sends to the engine's ``dicom`` listener, which forwards to a
dcmtk storescp; python-hl7's MLLP client sends one ADT beside them, to an MLLP
sink. The CLI (click's runner, on the engine's database while it runs) must show
each instance's Study, Series and SOP Instance UIDs with its status, and leave
the HL7 row as it was (UID fields null in JSON, no UID line in the table).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pydicom
import pytest
from click.testing import CliRunner
from hl7.client import MLLPClient

from eai.cli import cli
from standins.dicom import StoreScp, make_ct_series, storescu
from standins.mllp import MllpPeer
from tests.engine_harness import A01, EngineThread

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

HOST = "127.0.0.1"

ROUTES = """
engine:
  data_dir: {tmp}/var
  database: sqlite:///{tmp}/var/eai.db
listeners:
  - name: img
    type: dicom
    ae_title: EAI
    bind: 127.0.0.1:0
    spool_dir: {tmp}/spool
    allowed_callers:
      - {{ae_title: STORESCU}}
  - name: chu-x-adt
    type: mllp
    bind: 127.0.0.1:0
    allowed_senders: [CHU-X]
    test_feed: true
destinations:
  - name: pacs
    type: dicom
    ae_title: PACSSCP
    host: 127.0.0.1
    port: {pacs_port}
    retry: {{initial: 0.2s, max: 1s, jitter: 0}}
  - name: dcc
    type: mllp
    host: 127.0.0.1
    port: {dcc_port}
    retry: {{initial: 0.2s, max: 1s}}
routes:
  - name: images
    from: [img]
    to: [pacs]
  - name: adt
    from: [chu-x-adt]
    when: {{message_type: [ADT^A01]}}
    to: [dcc]
"""

UID_KEYS = ("study_instance_uid", "series_instance_uid", "sop_instance_uid")


def _cli(config: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["messages", *args, "-c", str(config)])
    assert result.exit_code == 0, result.output
    return result.output


def _list_json(config: Path, *args: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(_cli(config, "list", "--json", *args))
    return rows


def _settled(rows: list[dict[str, Any]], n: int) -> bool:
    return len(rows) == n and all(
        r["status"] == "processed" and [d["status"] for d in r["deliveries"]] == ["delivered"]
        for r in rows
    )


def test_dicom_instances_listed_with_their_uids_and_status(tmp_path: Path) -> None:
    files = make_ct_series(3, tmp_path / "ct", studies=2)  # 2 instances of A, 1 of B
    sent = [pydicom.dcmread(p, stop_before_pixels=True) for p in files]
    study_a, study_b = str(sent[0].StudyInstanceUID), str(sent[2].StudyInstanceUID)
    assert str(sent[1].StudyInstanceUID) == study_a != study_b
    with MllpPeer() as sink, StoreScp(tmp_path / "pacs", "PACSSCP") as pacs:
        config = tmp_path / "routes.yaml"
        config.write_text(ROUTES.format(tmp=tmp_path, pacs_port=pacs.port, dcc_port=sink.port))
        with EngineThread(config) as eng:
            rc, out = storescu(HOST, eng.port("img"), files[:2], "EAI")
            assert rc == 0, out
            with MLLPClient(HOST, eng.port("chu-x-adt")) as client:
                client.send_message(A01)
            rc, out = storescu(HOST, eng.port("img"), files[2:], "EAI")
            assert rc == 0, out
            assert len(pacs.wait_files(3, timeout=60)) == 3
            deadline = time.monotonic() + 30
            rows = _list_json(config)
            while not _settled(rows, 4) and time.monotonic() < deadline:
                time.sleep(0.2)
                rows = _list_json(config)
            assert _settled(rows, 4), rows

            # JSON, newest first: B's instance, the ADT, then A's two instances.
            dicom = [r for r in rows if r["content_type"] == "dicom"]
            (hl7,) = [r for r in rows if r["content_type"] != "dicom"]
            assert [r["sop_instance_uid"] for r in dicom] == [
                str(ds.SOPInstanceUID) for ds in reversed(sent)
            ]
            for r, ds in zip(dicom, reversed(sent), strict=True):
                assert r["study_instance_uid"] == str(ds.StudyInstanceUID)
                assert r["series_instance_uid"] == str(ds.SeriesInstanceUID)
                assert r["control_id"] == r["sop_instance_uid"]
                assert r["message_type"] == "DICOM^CT" and r["status"] == "processed"
            assert all(hl7[k] is None for k in UID_KEYS)
            assert (hl7["control_id"], hl7["message_type"]) == ("3975", "ADT^A01")
            # No patient data comes out of the reference (CT_small carries a PatientID).
            assert str(sent[0].PatientID) not in json.dumps(rows)

            # --study: only A's two instances, with their UIDs and status.
            in_a = _list_json(config, "--study", study_a)
            assert [r["sop_instance_uid"] for r in in_a] == [
                str(sent[1].SOPInstanceUID),
                str(sent[0].SOPInstanceUID),
            ]
            assert {r["study_instance_uid"] for r in in_a} == {study_a}
            assert {r["series_instance_uid"] for r in in_a} == {str(sent[0].SeriesInstanceUID)}
            assert {r["status"] for r in in_a} == {"processed"}
            assert [r["id"] for r in _list_json(config, "--study", study_a, "--limit", "1")] == [
                in_a[0]["id"]
            ]
            assert _list_json(config, "--study", "1.2.3.4") == []

            # Table: each DICOM row has its status, then a line with its three UIDs whole.
            table = _cli(config, "list", "--study", study_a).splitlines()
            assert table[0].split()[:2] == ["ID", "RECEIVED"]
            assert len(table) == 1 + 2 * 2
            for (row, uids), ds in zip(
                [(table[1], table[2]), (table[3], table[4])], [sent[1], sent[0]], strict=True
            ):
                assert "processed" in row.split() and "pacs:delivered(1)" in row.split()
                assert uids.split() == [
                    "study",
                    str(ds.StudyInstanceUID),
                    "series",
                    str(ds.SeriesInstanceUID),
                    "sop",
                    str(ds.SOPInstanceUID),
                ]
            full = _cli(config, "list").splitlines()
            assert len(full) == 1 + 3 * 2 + 1  # the ADT row has no UID line
            (adt_row,) = [line for line in full if "ADT^A01" in line]
            assert adt_row.split()[2:6] == ["chu-x-adt", "ADT^A01", "3975", "processed"]
            assert full[full.index(adt_row) + 1].split()[0] != "study"

            # show: the same UIDs, in JSON and text.
            first = dicom[-1]
            shown = json.loads(_cli(config, "show", str(first["id"]), "--json"))
            assert {k: shown[k] for k in UID_KEYS} == {k: first[k] for k in UID_KEYS}
            assert "raw" not in shown
            assert [e["kind"] for e in shown["events"]].count("raw_viewed") == 0
            text = _cli(config, "show", str(first["id"]))
            assert f"study {study_a}  series {first['series_instance_uid']}" in text
            shown_hl7 = json.loads(_cli(config, "show", str(hl7["id"]), "--json"))
            assert all(shown_hl7[k] is None for k in UID_KEYS)
