"""The forwarding process of a ``dicom`` destination, under faults, with real peers.

dcmtk's storescu -> eai (``dicom`` listener) -> forwarding process -> dcmtk's
storescp (``standins.dicom``; the routes of ``tests._dicom_routes``). The
forwarding process is killed with SIGKILL in the middle of a study; the engine
it belongs to is killed with SIGKILL; the engine stops normally: nothing is
lost, and no process is left behind.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

import pydicom
import pytest

from dicom_router.forward import DicomDestination
from standins.dicom import StoreScp, make_ct_series, storescu
from tests._dicom_routes import HOST, deliveries, router, write_routes
from tests._proc import EaiProcess, listener_port

pytestmark = pytest.mark.timeout(300)


def _destination(eng: object, name: str = "plain") -> DicomDestination:
    dest = eng.engine.workers[name]._dest  # type: ignore[attr-defined]
    assert isinstance(dest, DicomDestination)
    return dest


def _gone(pid: int) -> bool:
    """True when ``pid`` has exited (reaped, or a zombie nobody reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _wait(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.002)


def _uids(paths: list[Path]) -> set[str]:
    return {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in paths}


def test_killed_forwarding_process_loses_no_instance(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="dicom_router.forward")
    study = make_ct_series(30, tmp_path / "ct")
    expected = _uids(study)
    with router(tmp_path) as (eng, plain, _marked, cfg):
        port = eng.port("img")
        dest = _destination(eng)
        sent: dict[str, tuple[int, str]] = {}
        sender = threading.Thread(
            target=lambda: sent.update(rc=storescu(HOST, port, study, "EAI", timeout=120)),
            daemon=True,
        )
        sender.start()
        # Killed as soon as the first instances reach storescp: the rest are in flight
        # or still in the journal.
        _wait(lambda: dest.pid is not None and plain.count() >= 1, 60, "nothing forwarded")
        victim = dest.pid
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        at_kill = plain.count()
        assert at_kill < len(study), "the study was forwarded before the kill: not mid-flow"
        sender.join(120)
        assert sent["rc"][0] == 0, sent["rc"][1]
        # Every instance arrives (the one in flight at the kill perhaps twice: storescp
        # may have stored it before the process died, and it is sent again).
        deadline = time.monotonic() + 60
        while _uids(plain.wait_files(len(study), timeout=60)) != expected:
            assert time.monotonic() < deadline, "some instances never arrived"
            time.sleep(0.2)
        _wait(lambda: _gone(victim), 10, "the killed process was not reaped")
        # A new forwarding process took over, and the engine goes on.
        assert dest.pid is not None and dest.pid != victim
        _wait(
            lambda: all(d["status"] == "delivered" for d in deliveries(cfg)),
            30,
            "not every delivery is delivered",
        )
        more = make_ct_series(1, tmp_path / "more")
        rc, out = storescu(HOST, port, more, "EAI")
        assert rc == 0, out
        _wait(lambda: _uids(plain.files()) == expected | _uids(more), 30, "not forwarded")
    dead = [r for r in caplog.records if "ended (exit code" in r.getMessage()]
    assert (
        dead
        and dead[0].levelno == logging.WARNING
        and f"code -{signal.SIGKILL}" in (dead[0].getMessage())
    )
    # The forwarding processes' records reached the engine's logging, same logger.
    children = {r.process for r in caplog.records if r.name == "dicom_router.forward"}
    assert victim in children and len(children - {os.getpid()}) >= 2


def test_close_stops_the_forwarding_process(tmp_path: Path) -> None:
    with router(tmp_path) as (eng, plain, _marked, _cfg):
        port = eng.port("img")
        dest = _destination(eng)
        _wait(lambda: dest.pid is not None, 10, "not started with the delivery worker")
        started = dest.pid
        rc, out = storescu(HOST, port, make_ct_series(2, tmp_path / "ct"), "EAI")
        assert rc == 0, out
        plain.wait_files(2)
        pid = dest.pid
        assert pid == started and pid is not None and not _gone(pid)
        # One process per destination (this route file has two), each started ahead.
        assert pid in [p.pid for p in multiprocessing.active_children()]
        assert len(multiprocessing.active_children()) == len(eng.config.destinations)
    # The engine stopped: close() released the association and reaped the process.
    assert not Path(f"/proc/{pid}").exists()
    assert dest.pid is None and multiprocessing.active_children() == []


def test_forwarding_process_runs_at_a_lower_priority(tmp_path: Path) -> None:
    """Forwarding yields the CPU to the listeners (``nice``, default 10)."""
    with router(tmp_path) as (eng, _plain, _marked, _cfg):
        dest = _destination(eng)
        assert dest.config.nice == 10
        _wait(lambda: dest.pid is not None, 10, "not started with the delivery worker")
        pid = dest.pid
        assert pid is not None
        ours = os.getpriority(os.PRIO_PROCESS, 0)
        _wait(
            lambda: os.getpriority(os.PRIO_PROCESS, pid) == min(19, ours + 10),
            10,
            "the forwarding process kept the engine's priority",
        )


def test_forwarding_process_ends_with_the_engine(tmp_path: Path) -> None:
    port = listener_port()
    with StoreScp(tmp_path / "plain", "PLAINSCP") as plain:
        routes = write_routes(tmp_path, plain.port, plain.port)
        text = routes.read_text()
        routes.write_text(text.replace("bind: 127.0.0.1:0\n", f"bind: 127.0.0.1:{port}\n"))
        with EaiProcess(routes, port, tmp_path / "eai.log").start() as eai:
            rc, out = storescu(HOST, port, make_ct_series(1, tmp_path / "ct"), "EAI")
            assert rc == 0, out
            plain.wait_files(1)
            assert eai.proc is not None
            tasks = Path(f"/proc/{eai.proc.pid}/task").glob("*/children")
            pids = {int(pid) for task in tasks for pid in task.read_text().split()}
            # Besides multiprocessing's resource tracker (spawn starts one per engine).
            children = [p for p in pids if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]
            assert len(children) == 2  # one per destination of this route file
            eai.kill9()
            _wait(lambda: all(_gone(c) for c in children), 10, "a forwarder outlived its engine")


def test_send_to_a_dead_process_reaps_it_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    """The send notices the death first (its write fails before the loop reads the end
    of the pipe): the process is reaped and its end logged all the same."""
    import asyncio

    from dicom_router._dest_config import DicomDestinationConfig
    from eai.errors import TransientDeliveryError
    from eai.messages import MEDIA_DICOM_REF, OutboxItem

    async def scenario() -> int:
        dest = DicomDestination(
            DicomDestinationConfig(name="pacs", ae_title="PACS", host=HOST, port=9)
        )
        await dest.start()
        pid = dest.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        _wait(lambda: _gone(pid), 10, "not killed")  # blocking: the loop reads nothing
        item = OutboxItem(
            delivery_id=1,
            message_id=1,
            destination="pacs",
            payload=b"{}",
            control_id="1",
            patient_key="",
            media_type=MEDIA_DICOM_REF,
        )
        with pytest.raises(TransientDeliveryError, match="ended unexpectedly"):
            await dest.send(item)
        for _ in range(500):
            if not Path(f"/proc/{pid}").exists():
                break
            await asyncio.sleep(0.01)
        await dest.close()
        return pid

    caplog.set_level(logging.INFO, logger="dicom_router.forward")
    pid = asyncio.run(scenario())
    assert not Path(f"/proc/{pid}").exists(), "the dead process was never reaped"
    ended = [r for r in caplog.records if "ended (exit code" in r.getMessage()]
    assert ended and f"{pid} ended (exit code -{signal.SIGKILL})" in ended[0].getMessage()
