"""Reloading a running engine whose route has ``map: auto`` after a mapping's
``default_for`` changed or a new mapping file appeared (the choice per message type is
cached; a reload forgets it)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hl7.client import MLLPClient
from sqlalchemy import select

from eai.store import Store
from eai.store.schema import deliveries
from tests._mllp import msa
from tests._paths import REPO
from tests._proc import EaiProcess, eai_cli, listener_port
from tests.engine_harness import adt

pytestmark = pytest.mark.integration

MAPPINGS_DIR = REPO / "mappings"

MAPPING = """\
name: {name}
description: eai reload map auto test (removed by the test)
source: hl7v2
default_for:
  message_type: ["{message_type}"]
resources:
  - id: patient
    type: Patient
    rules:
      - set:
          name[+].family: {{value: "{name}"}}
"""

ROUTES = """\
engine: {{data_dir: {tmp}/var, database: "sqlite:///{tmp}/var/eai.db"}}
listeners:
  - {{name: adt, type: mllp, bind: "127.0.0.1:{port}", test_feed: true}}
destinations:
  # nothing listens there: the deliveries stay in the outbox with the mapping chosen
  - name: scad
    type: fhir
    base_url: http://127.0.0.1:9/fhir
    retry: {{initial: 30s, max: 1m}}
routes:
  - {{name: to-scad, from: [adt], to: [scad], map: auto}}
"""


@pytest.fixture
def names() -> Iterator[tuple[str, str]]:
    """Two mapping files of the test's own (the first sorts before every shipped mapping,
    so ``map: auto`` prefers it when both take a message), removed afterwards."""
    tag = uuid.uuid4().hex[:8]
    pair = (f"a0-reload-auto-{tag}", f"a1-reload-auto-{tag}")
    try:
        yield pair
    finally:
        for name in pair:
            (MAPPINGS_DIR / f"{name}.yaml").unlink(missing_ok=True)


def _write(name: str, message_type: str) -> None:
    text = MAPPING.format(name=name, message_type=message_type)
    (MAPPINGS_DIR / f"{name}.yaml").write_text(text)


def _send(port: int, control_id: str) -> None:
    with MLLPClient("127.0.0.1", port) as client:
        assert msa(client.send_message(adt(control_id, control_id)))[0] == "AA"


def _mapping_used(tmp: Path, control_id: str, timeout: float = 20.0) -> str:
    """The mapping recorded on the delivery planned for ``control_id``."""
    store = Store(f"sqlite:///{tmp}/var/eai.db", tmp / "var")
    deadline = time.monotonic() + timeout
    try:
        while True:
            with store.engine.connect() as conn:
                row = conn.execute(
                    select(deliveries.c.mapping).where(deliveries.c.control_id == control_id)
                ).first()
            if row is not None:
                return str(row.mapping)
            assert time.monotonic() < deadline, f"no delivery planned for {control_id}"
            time.sleep(0.05)
    finally:
        store.engine.dispose()


def _reload(path: Path) -> None:
    done = eai_cli(path, "reload")
    assert done.returncode == 0, done.stdout + done.stderr


def test_map_auto_follows_new_mappings_and_changed_default_for_after_reload(
    tmp_path: Path, names: tuple[str, str]
) -> None:
    first, second = names
    _write(second, "ADT^A01")
    port = listener_port()
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES.format(tmp=tmp_path, port=port))
    with EaiProcess(path, port, tmp_path / "engine.log").start() as proc:
        _send(port, "M1")
        assert _mapping_used(tmp_path, "M1") == second

        _write(first, "ADT^A01")  # a new file, first by name: it takes ADT^A01 now
        _reload(path)
        _send(port, "M2")
        assert _mapping_used(tmp_path, "M2") == first

        _write(first, "ADT^A08")  # its default_for no longer takes A01
        _reload(path)
        _send(port, "M3")
        assert _mapping_used(tmp_path, "M3") == second
        assert proc.running
