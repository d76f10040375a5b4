"""DICOM messages that say what is wrong: host refusals named as such, a closed port said
as eai send says it, an instance's journey with its real size and the status answered."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from dicom_router.client import echo, parse_peer, send_files
from eai.cli import cli
from standins.dicom import make_ct_series
from tests._proc import EAI
from tests.engine_harness import EngineThread

pytestmark = pytest.mark.integration

ROUTES = """
engine:
  data_dir: {tmp}/var
listeners:
  - name: img
    type: dicom
    ae_title: EAI
    bind: 127.0.0.1:0
    spool_dir: {tmp}/spool
    allowed_callers:
      - {{ae_title: MODALITY}}
      - {{ae_title: FAR, hosts: [10.9.9.0/24]}}
destinations:
  - name: pacs
    type: dicom
    ae_title: PACS
    host: 127.0.0.1
    port: {closed}
    retry: {{initial: 30s, max: 60s}}
routes:
  - name: images
    from: [img]
    to: [pacs]
"""


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(tmp: Path) -> Path:
    path = tmp / "routes.yaml"
    path.write_text(ROUTES.format(tmp=tmp, closed=_closed_port()))
    return path


def _refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("dicom_router") and "refused" in r.getMessage()
    ]


def test_caller_from_another_host_is_logged_as_a_host_refusal(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    with EngineThread(_config(tmp_path)) as eng:
        peer = parse_peer(f"EAI@127.0.0.1:{eng.port('img')}")
        with pytest.raises(OSError, match="rejected"):
            echo(peer, "FAR", timeout=5)
        with pytest.raises(OSError, match="rejected"):
            echo(peer, "STRANGER", timeout=5)
        assert echo(peer, "MODALITY", timeout=5) == 0
    far, stranger = _refusals(caplog)
    assert "host 127.0.0.1 refused: calling AE title 'FAR' is allowed only from 10.9.9.0/24" in far
    assert "calling AE title 'STRANGER' is not in allowed_callers" in stranger
    assert "not allowed" not in far + stranger


@pytest.mark.parametrize("command", ["echo", "send"])
def test_closed_port_said_like_eai_send(tmp_path, command):
    port = _closed_port()
    files = [str(p) for p in make_ct_series(2, tmp_path / "ct")] if command == "send" else []
    res = subprocess.run(
        [*EAI, "dicom", command, f"PACS@127.0.0.1:{port}", *files],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 1
    lines = [line for line in res.stderr.splitlines() if line.startswith("eai: error:")]
    assert lines == [
        f"eai: error: PACS@127.0.0.1:{port}: cannot connect: Connection refused"
        + (" (2 file(s) not sent)" if command == "send" else "")
    ], res.stderr
    assert "ERROR" not in res.stderr and "pynetdicom" not in res.stderr


def test_journey_shows_the_instance_size_and_the_status_answered(tmp_path):
    (ct,) = make_ct_series(1, tmp_path / "ct")
    config = _config(tmp_path)
    with EngineThread(config) as eng:
        peer = parse_peer(f"EAI@127.0.0.1:{eng.port('img')}")
        (result,) = send_files(peer, [ct], "MODALITY", timeout=10)
        assert result.ok and result.detail == "0x0000"
    out = CliRunner().invoke(cli, ["messages", "show", "1", "--json", "-c", str(config)])
    assert out.exit_code == 0, out.output
    view = json.loads(out.output)
    # the Part-10 instance as spooled: the data set received and its file meta
    assert ct.stat().st_size - 256 <= view["size"] <= ct.stat().st_size + 256
    events = {e["kind"]: e["detail"] for e in view["events"]}
    assert f"bytes={view['size']} " in events["received"]
    assert events["acknowledged"] == "status=0x0000"
