"""Reloading a running engine after a mapping file changed (eai reload and SIGHUP), and
``eai events list``, the engine-wide events that journal each reload."""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hl7.client import MLLPClient

from standins.mllp import MllpPeer
from tests._mllp import msa
from tests._proc import EaiProcess, eai_cli, listener_port
from tests._reload_mapping import MAPPINGS_DIR, mapping_routes, planned, send
from tests.engine_harness import EngineThread, adt, write_routes

pytestmark = pytest.mark.integration

MAPPING = """\
name: {name}
description: eai reload test (removed by the test)
source: hl7v2
resources:
  - id: patient
    type: Patient
    rules:
      - set:
          name[+].family: {{value: "{family}"}}
"""


@pytest.fixture
def mapping_name() -> Iterator[str]:
    """A mapping file of the test's own in ``mappings/`` (where ``map:`` names are looked
    up), removed afterwards; it has no ``default_for``, so ``map: auto`` never takes it."""
    name = f"zz-reload-test-{uuid.uuid4().hex[:8]}"
    try:
        yield name
    finally:
        (MAPPINGS_DIR / f"{name}.yaml").unlink(missing_ok=True)


def _write_mapping(name: str, family: str) -> None:
    (MAPPINGS_DIR / f"{name}.yaml").write_text(MAPPING.format(name=name, family=family))


def _family_delivered(tmp: Path, control_id: str) -> str:
    """The Patient family name in the Bundle planned for ``control_id``'s delivery."""
    bundle = json.loads(planned(tmp, control_id)[1])
    [entry] = bundle["entry"]
    return str(entry["resource"]["name"][0]["family"])


def _wait_in_log(proc: EaiProcess, text: str, count: int) -> None:
    deadline = time.monotonic() + 20
    while proc.stderr().count(text) < count:
        assert time.monotonic() < deadline, proc.stderr()[-2000:]
        time.sleep(0.05)


def test_an_edited_mapping_makes_the_next_messages_after_reload_and_sighup(
    tmp_path: Path, mapping_name: str
) -> None:
    _write_mapping(mapping_name, "BEFORE")
    port = listener_port()
    path = mapping_routes(tmp_path, port, mapping_name)
    with EaiProcess(path, port, tmp_path / "engine.log").start() as proc:
        send(port, "M1", "P1")
        assert _family_delivered(tmp_path, "M1") == "BEFORE"

        _write_mapping(mapping_name, "AFTER-RELOAD")
        done = eai_cli(path, "reload")
        assert done.returncode == 0, done.stdout + done.stderr
        send(port, "M2", "P2")
        assert _family_delivered(tmp_path, "M2") == "AFTER-RELOAD"

        _write_mapping(mapping_name, "AFTER-SIGHUP")
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGHUP)
        _wait_in_log(proc, "config reloaded by signal SIGHUP", 1)
        send(port, "M3", "P3")
        assert _family_delivered(tmp_path, "M3") == "AFTER-SIGHUP"

        # a broken mapping is refused at its own FILE:LINE:COL, the last good one stays
        (MAPPINGS_DIR / f"{mapping_name}.yaml").write_text("name: [\n")
        done = eai_cli(path, "reload")
        assert done.returncode == 1, done.stdout + done.stderr
        assert f"{mapping_name}.yaml:" in done.stderr
        send(port, "M4", "P4")
        assert _family_delivered(tmp_path, "M4") == "AFTER-SIGHUP"
        assert proc.running
    assert _family_delivered(tmp_path, "M1") == "BEFORE"  # planned once, kept as planned


def _events(path: Path, *args: str) -> list[dict[str, str]]:
    done = eai_cli(path, "events", "list", "--json", *args)
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, str]] = json.loads(done.stdout)
    return rows


def test_events_list_shows_each_reload_applied_or_refused_newest_first(tmp_path: Path) -> None:
    with MllpPeer() as sink:
        path = write_routes(tmp_path, sink.port)
        assert eai_cli(path, "events", "list").stderr == "no event\n"
        with EngineThread(path) as eng:
            with MLLPClient("127.0.0.1", eng.port("chu-x-adt")) as client:
                assert msa(client.send_message(adt("E1", "P1")))[0] == "AA"
            assert sink.wait_for(lambda s: "E1" in s.control_ids(), 10)
            assert eai_cli(path, "reload").returncode == 0
            good = path.read_text()
            path.write_text(good.replace("    to: [dcc]\n", "    to: [dcx]\n"))
            assert eai_cli(path, "reload").returncode == 1
            path.write_text(good)

    rows = _events(path)
    assert [r["kind"] for r in rows] == ["config_reload_refused", "config_reloaded"]
    refused, applied = rows
    assert refused["id"] > applied["id"] and refused["at"] >= applied["at"]
    assert "through the admin socket" in applied["detail"] and "sha256" in applied["detail"]
    assert "unknown destination 'dcx'" in refused["detail"]
    assert "routes.yaml:" in refused["detail"]
    assert [r["kind"] for r in _events(path, "--kind", "config_reloaded")] == ["config_reloaded"]
    assert len(_events(path, "--kind", "reload")) == 2
    assert len(_events(path, "--limit", "1")) == 1
    assert _events(path, "--since", "2999-01-01") == []

    text = eai_cli(path, "events", "list").stdout.splitlines()
    assert text[0].split() == ["ID", "AT", "(UTC)", "KIND", "DETAIL"]
    assert [line.split()[3] for line in text[1:]] == ["config_reload_refused", "config_reloaded"]
    # messages' own events are not engine-wide ones
    assert all(r["kind"].startswith("config_reload") for r in rows)
