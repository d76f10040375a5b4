"""``engine.plan_processes``: the pipeline plans in worker processes (``eai._plan_pool``).

CR-BIO ORUs over MLLP -> eai with two planning processes -> Medplum's FHIR router
(tests/_fhir_peer): the reports arrive as with planning in a thread (one Patient, every
Observation), and the plans came from the workers. A worker killed with SIGKILL delays
its batch and loses nothing; a reload plans the next messages in new workers with the
new routes; a worker's log records reach the engine's logging, from the worker's pid.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from eai._plan_pool import PlanPool, PlanSource
from eai.cli import cli
from eai.store import Cipher, ClaimedMessage
from mappings import convert
from tests._crbio import ORU, crbio_oru
from tests._fhir_peer import FhirPeer
from tests._mllp import MllpSender, msa
from tests.engine_harness import EngineThread

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def _config(tmp: Path, *, when: dict[str, Any] | None = None, base_url: str) -> dict[str, Any]:
    route: dict[str, Any] = {"name": "scad", "from": ["lab"], "to": ["scad"]}
    route["map"] = "cisis-oru-mdm"
    if when:
        route["when"] = when
    return {
        "engine": {
            "data_dir": str(tmp / "var"),
            "database": f"sqlite:///{tmp}/var/eai.db",
            "plan_processes": 2,
            "lease": "2s",
        },
        "listeners": [{"name": "lab", "type": "mllp", "bind": "127.0.0.1:0", "test_feed": True}],
        "destinations": [
            {
                "name": "scad",
                "type": "fhir",
                "base_url": base_url,
                "retry": {"initial": "0.05s", "max": "0.2s", "jitter": 0},
            }
        ],
        "routes": [route],
    }


def _write(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(json.dumps(config, indent=1))
    return path


def _messages(config: Path) -> list[dict[str, Any]]:
    result = CliRunner().invoke(cli, ["messages", "list", "-c", str(config), "--json"])
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.output)
    return rows


def _delivered(config: Path, n: int) -> Callable[[], bool]:
    def check() -> bool:
        rows = [d for m in _messages(config) for d in m["deliveries"]]
        return len(rows) == n and all(d["status"] == "delivered" for d in rows)

    return check


def _wait(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _send(port: int, *control_ids: str) -> None:
    with MllpSender(port) as sender:
        for cid in control_ids:
            code, _ = msa(sender.exchange(crbio_oru(cid)))
            assert code == "AA", f"{cid}: {code}"


def _planner(eng: EngineThread) -> PlanPool:
    planner = eng.engine._planner
    assert planner is not None, "engine.plan_processes: 2 started no planning processes"
    return planner


@pytest.fixture
def peer() -> Iterator[FhirPeer]:
    with FhirPeer() as running:
        yield running


def test_reports_planned_in_processes_reach_the_fhir_server(peer: FhirPeer, tmp_path: Path) -> None:
    config = _write(tmp_path / "routes.yaml", _config(tmp_path, base_url=peer.base_url))
    with EngineThread(config) as eng:
        planner = _planner(eng)
        _send(eng.port("lab"), "ORU-0001", "ORU-0002")
        _wait(_delivered(config, 2), "both reports delivered")
        assert planner.planned == 2, "the plans came from the planning processes"
        assert len(planner.pids()) == 2 and os.getpid() not in planner.pids()
    assert len(peer.search("Patient")) == 1, "the Patient is created once (ifNoneExist)"
    expected = [
        e["resource"]
        for e in convert(ORU, "hl7v2", "cisis-oru-mdm")["entry"]
        if e["resource"]["resourceType"] == "Observation"
    ]
    assert len(peer.search("Observation")) == 2 * len(expected)
    assert len(peer.search("DiagnosticReport")) == 2


def test_a_killed_planning_process_delays_its_batch_and_loses_nothing(
    peer: FhirPeer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = _write(tmp_path / "routes.yaml", _config(tmp_path, base_url=peer.base_url))
    with EngineThread(config) as eng:
        planner = _planner(eng)
        _send(eng.port("lab"), "ORU-0001")
        _wait(_delivered(config, 1), "the first report delivered")
        killed = planner.pids()
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        _send(eng.port("lab"), "ORU-0002", "ORU-0003")  # acknowledged: journaled
        _wait(_delivered(config, 3), "the reports acknowledged after the kill delivered")
        assert set(planner.pids()).isdisjoint(killed), "new planning processes"
    assert any("planning process ended unexpectedly" in r.getMessage() for r in caplog.records)
    assert [r["id"] for r in peer.log() if r["path"] == "/fhir"] == [
        "ORU-0001",
        "ORU-0002",
        "ORU-0003",
    ]


def test_a_reload_plans_with_the_new_routes_in_new_processes(
    peer: FhirPeer, tmp_path: Path
) -> None:
    path = tmp_path / "routes.yaml"
    config = _write(path, _config(tmp_path, base_url=peer.base_url))
    with EngineThread(config) as eng:
        planner = _planner(eng)
        _send(eng.port("lab"), "ORU-0001")
        _wait(_delivered(config, 1), "the first report delivered")
        before = planner.pids()
        # The route now takes ADT only: the next ORU matches no route.
        reloaded = json.loads(path.read_text())
        reloaded["routes"][0]["when"] = {"message_type": ["ADT^A01"]}
        path.write_text(json.dumps(reloaded, indent=1))
        loop = eng._loop
        assert loop is not None
        asyncio.run_coroutine_threadsafe(eng.engine.reload("test"), loop).result(30)
        _send(eng.port("lab"), "ORU-0002")
        _wait(
            lambda: [m["status"] for m in _messages(config)] in (["filtered", "processed"],),
            "the second report filtered by the new route",
        )
        assert set(planner.pids()).isdisjoint(before), "the reload started new processes"
        assert planner.planned == 2


_ROUTES = """
engine: {{data_dir: {tmp}/var}}
listeners:
  - {{name: lab, type: mllp, bind: "127.0.0.1:0"}}
destinations:
  - {{name: dcc, type: mllp, host: 127.0.0.1, port: 9}}
routes:
  - {{name: all, from: [lab], to: [dcc]}}
"""


def test_a_workers_log_records_reach_the_engines_logging(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A message whose sealed payload cannot be opened is rejected in the worker, which
    logs it; the record is handled by the engine's logger, from the worker's pid."""
    text = _ROUTES.format(tmp=tmp_path).encode()
    cipher = Cipher(os.urandom(32))
    unreadable = ClaimedMessage(
        7, "lab", datetime.now(UTC), "hl7v2", "C7", "ADT^A01", b"\x01" + os.urandom(40)
    )
    caplog.set_level(logging.ERROR, logger="eai.pipeline")

    async def plan() -> list[Any]:
        pool = PlanPool(PlanSource(text, str(tmp_path / "routes.yaml"), cipher), 1)
        try:
            return await pool.plans([unreadable], None)
        finally:
            pool.close()

    [rejected] = asyncio.run(plan())
    assert (rejected.message_id, rejected.status) == (7, "rejected")
    [record] = [r for r in caplog.records if "message 7 cannot be read" in r.getMessage()]
    assert record.name == "eai.pipeline" and record.process != os.getpid()
