"""``eai dmp preview``: the XDS metadata a journaled CI-SIS message would publish to the DMP,
planned through today's routes.yaml, nothing sent: the CR-BIO ORU's classCode, typeCode,
formatCode, qualified patientId, uniqueId, hash and size, without the document or the
patient's name; with --raw the patient's traits too, read through the engine's admin
socket, which records raw_viewed with the reason; a deletion previews its ITI-57."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from eai.cli import cli
from tests._crbio import ORU, crbio_oru
from tests._mllp import MllpSender, msa
from tests._national import dmp_standin
from tests.engine_harness import EngineThread

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _document() -> bytes:
    obx = next(s for s in ORU.decode().split("\r") if s.startswith("OBX|1|ED|"))
    data = obx.split("|")[5].split("^")[4]
    return base64.b64decode(data + "=" * (-len(data) % 4))


@pytest.fixture
def routes(tmp_path: Path) -> Iterator[Path]:
    with dmp_standin(tmp_path) as peer:
        yield peer.routes(tmp_path)


def _cli(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def _wait(condition: Callable[[], bool], what: str, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _message_ids(config: Path) -> list[int]:
    listed = _cli("messages", "list", "-c", str(config), "--json")
    assert listed.exit_code == 0, listed.output
    rows: list[dict[str, Any]] = json.loads(listed.output)
    return sorted(r["id"] for r in rows if r["deliveries"])


def _events(config: Path, message_id: int) -> list[dict[str, Any]]:
    shown = _cli("messages", "show", str(message_id), "-c", str(config), "--json")
    assert shown.exit_code == 0, shown.output
    events: list[dict[str, Any]] = json.loads(shown.output)["events"]
    return events


def test_preview_prints_the_metadata_without_the_document_or_the_patient(routes: Path) -> None:
    with EngineThread(routes) as eng:
        with MllpSender(eng.port("lab")) as sender:
            assert msa(sender.exchange(crbio_oru("PREVIEW-1")))[0] == "AA"
        _wait(lambda: len(_message_ids(routes)) == 1, "the journaled message")
        (message_id,) = _message_ids(routes)
        text = _cli("dmp", "preview", str(message_id), "-c", str(routes))
        assert text.exit_code == 0, text.output
        as_json = _cli("dmp", "preview", str(message_id), "-c", str(routes), "--json")
        assert as_json.exit_code == 0, as_json.output
        (shown,) = json.loads(as_json.output)
        entry = shown["documentEntry"]
        document = _document()
        assert entry["classCode"]["code"] == "10"
        assert entry["typeCode"]["code"] == "11502-2"
        assert entry["formatCode"]["code"] == "urn:ihe:lab:xd-lab:2008"
        assert entry["uniqueId"] == "1.2.250.1.213.1.1.9"
        assert entry["patientId"] == "279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH"
        assert [c["code"] for c in entry["confidentialityCode"]] == ["N"]
        assert (entry["hash"], entry["size"]) == (hashlib.sha1(document).hexdigest(), len(document))  # noqa: S324
        assert shown["submissionSet"]["patientId"] == entry["patientId"]
        assert shown["transaction"].startswith("ITI-41")
        for output in (text.output, as_json.output):
            assert "PAT-TROIS" not in output and "DOMINIQUE" not in output
            assert "ClinicalDocument" not in output
            assert base64.b64encode(document)[:60].decode() not in output
        assert re.search(r"classCode: 10 \(.*\) \[1\.2\.250\.1\.213\.1\.1\.4\.1\]", text.output)
        assert "raw_viewed" not in [e["kind"] for e in _events(routes, message_id)]

        raw = _cli(
            "dmp", "preview", str(message_id), "-c", str(routes), "--raw", "--reason", "ticket 4521"
        )
        assert raw.exit_code == 0, raw.output
        assert "PID-5|PAT-TROIS^DOMINIQUE" in raw.output
        viewed = [e for e in _events(routes, message_id) if e["kind"] == "raw_viewed"]
        assert len(viewed) == 1 and "ticket 4521" in viewed[0]["detail"]


def test_preview_of_a_deletion_shows_its_iti57(routes: Path) -> None:
    with EngineThread(routes) as eng:
        for control_id, delete in (("PREVIEW-2", False), ("PREVIEW-3", True)):
            with MllpSender(eng.port("lab")) as sender:
                assert msa(sender.exchange(crbio_oru(control_id, delete=delete)))[0] == "AA"
        _wait(lambda: len(_message_ids(routes)) == 2, "the journaled messages")
        deletion = _message_ids(routes)[1]
        result = _cli("dmp", "preview", str(deletion), "-c", str(routes), "--json")
    assert result.exit_code == 0, result.output
    (shown,) = json.loads(result.output)
    assert shown["transaction"].startswith("ITI-57")
    assert shown["endpoint"].endswith("/registry")
    assert shown["statusChange"]["NewStatus"] == "urn:asip:ci-sis:2010:StatusType:Deleted"
    assert shown["statusChange"]["uniqueId"] == "1.2.250.1.213.1.1.9"
    assert "documentEntry" not in shown


def test_preview_of_a_message_without_a_dmp_delivery_exits_1(routes: Path) -> None:
    payload = b"\r".join(
        s.replace(
            b"DESTDMP^Destinataire DMP^MetaDMPMSS||Y", b"DESTDMP^Destinataire DMP^MetaDMPMSS||N"
        )
        for s in crbio_oru("PREVIEW-4").split(b"\r")
    )
    assert payload != crbio_oru("PREVIEW-4")
    with EngineThread(routes) as eng:
        with MllpSender(eng.port("lab")) as sender:
            assert msa(sender.exchange(payload))[0] == "AA"
        _wait(
            lambda: bool(
                _cli("messages", "list", "-c", str(routes), "--json").output.strip("[]\n ")
            ),
            "the message",
        )
        listed = json.loads(_cli("messages", "list", "-c", str(routes), "--json").output)
        result = _cli("dmp", "preview", str(listed[0]["id"]), "-c", str(routes))
    assert result.exit_code == 1
    assert "no delivery to a dmp destination" in result.output
