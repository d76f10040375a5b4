"""Runs a real engine on a thread for integration tests, and builds test messages.

:class:`EngineThread`, and the routes.yaml :func:`write_routes` writes, journal where
``EAI_TEST_DATABASE`` says (``tests/_database.py``).
"""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eai.config import load_config
from eai.engine import Engine
from eai.messages import JournalEntry
from standins.hl7 import adt_from
from tests._database import on_test_database
from tests._paths import HL7V2

A01 = (HL7V2 / "pamfr_a01_admission.er7").read_bytes()


def adt(
    control_id: str,
    patient: str = "000003",
    trigger: str = "A01",
    facility: str = "CHU-X",
    **fields: Any,
) -> bytes:
    """The national PAM FR A01 fixture with another MSH-10, patient id and trigger
    (:func:`standins.hl7.adt_from`: ``fields`` replace MSH-3/12/15/18, PID-5, the separator)."""
    return adt_from(A01, control_id, patient, trigger, facility, **fields)


def adt_entry(control_id: str, patient: str = "000003") -> JournalEntry:
    """:func:`adt` as listener ``chu-x-adt`` journals it: received, answered AA."""
    return JournalEntry(
        listener="chu-x-adt",
        payload=adt(control_id, patient),
        received_at=datetime.now(UTC),
        status="received",
        peer="127.0.0.1:1",
        dedup_key=f"chu-x-adt|APP|CHU-X|{control_id}",
        control_id=control_id,
        message_type="ADT^A01",
        sending_application="APP",
        sending_facility="CHU-X",
        ack=b"MSH|^~\\&|\rMSA|AA|" + control_id.encode(),
    )


ROUTES = """
engine:
  data_dir: {data_dir}
  database: {database}
listeners:
  - name: chu-x-adt
    type: mllp
    bind: 127.0.0.1:0
    allowed_senders: [CHU-X]
    test_feed: true           # the national fixtures carry the INS test OID
destinations:
  - name: dcc
    type: mllp
    host: 127.0.0.1
    port: {dcc_port}
    ack_timeout: {ack_timeout}
    connections: {connections}
    retry: {{initial: 0.05s, max: 0.5s{max_attempts}}}
routes:
  - name: adt-to-dcc
    from: [chu-x-adt]
    when:
      message_type: [ADT^A01, ADT^A02, ADT^A03, ADT^A04, ADT^A08, ADT^A11, ADT^A40]
    to: [dcc]
"""


def write_routes(
    tmp: Path,
    dcc_port: int,
    database: str | None = None,
    *,
    ack_timeout: str = "2s",
    connections: int = 2,
    max_attempts: int | None = None,
    extra: str = "",
) -> Path:
    data_dir = tmp / "var"
    db = database or f"sqlite:///{data_dir}/eai.db"
    text = (
        ROUTES.format(
            data_dir=data_dir,
            database=db,
            dcc_port=dcc_port,
            ack_timeout=ack_timeout,
            connections=connections,
            max_attempts="" if max_attempts is None else f", max_attempts: {max_attempts}",
        )
        + extra
    )
    path = tmp / "routes.yaml"
    path.write_text(text)
    return on_test_database(path)  # so too the CLI run before (or without) an engine


class EngineThread:
    """``with EngineThread(path) as eng: eng.port("chu-x-adt")``."""

    def __init__(self, config_path: Path, key: str | None = None) -> None:
        self.config = load_config(on_test_database(config_path), env={})
        self.engine = Engine(self.config, key=key, grace=5.0, config_path=config_path)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self.error: BaseException | None = None

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stopping = asyncio.Event()
            runner = asyncio.create_task(self.engine.run(self._stopping))
            started = asyncio.create_task(self.engine.started.wait())
            await asyncio.wait({runner, started}, return_when=asyncio.FIRST_COMPLETED)
            self._ready.set()
            await runner

        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            self.error = exc
            self._ready.set()

    def start(self) -> EngineThread:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(30), "engine did not start"
        if self.error:
            raise self.error
        return self

    def port(self, listener: str) -> int:
        return int(self.engine.listeners[listener].port)  # type: ignore[attr-defined]

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(30)
            assert not self._thread.is_alive(), "engine did not stop"
        if self.error:
            raise self.error

    def __enter__(self) -> EngineThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
