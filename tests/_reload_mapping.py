"""What the mapping reload tests share: the engine config routing an MLLP listener to a FHIR
destination nobody answers (the deliveries stay in the outbox, each with the Bundle and the
mapping chosen when the message was planned), an ADT sent to it, and the planned delivery
read back from the store."""

from __future__ import annotations

import time
from pathlib import Path

from hl7.client import MLLPClient
from sqlalchemy import select

from eai.store import Store
from eai.store.schema import deliveries
from tests._database import database_url
from tests._mllp import msa
from tests._paths import REPO
from tests.engine_harness import adt

MAPPINGS_DIR = REPO / "mappings"
"""Where ``map: NAME`` is looked up (``mappings/NAME.yaml``), in the engine's process too."""

ROUTES = """\
engine: {{data_dir: {tmp}/var, database: "sqlite:///{tmp}/var/eai.db"}}
listeners:
  - {{name: adt, type: mllp, bind: "127.0.0.1:{port}", test_feed: true}}
destinations:
  # nothing listens there: the deliveries stay in the outbox, each with the Bundle that
  # the route's mapping made when the message was planned
  - name: scad
    type: fhir
    base_url: http://127.0.0.1:9/fhir
    retry: {{initial: 30s, max: 1m}}
routes:
  - {{name: to-scad, from: [adt], to: [scad], map: {mapping}}}
"""


def mapping_routes(tmp: Path, port: int, mapping: str) -> Path:
    """``tmp``/routes.yaml: listener ``adt`` on ``port`` -> ``scad`` with ``map: mapping``."""
    path = tmp / "routes.yaml"
    path.write_text(ROUTES.format(tmp=tmp, port=port, mapping=mapping))
    return path


def send(port: int, control_id: str, patient: str) -> None:
    """An ADT to the listener, acknowledged AA."""
    with MLLPClient("127.0.0.1", port) as client:
        assert msa(client.send_message(adt(control_id, patient)))[0] == "AA"


def planned(tmp: Path, control_id: str, timeout: float = 20.0) -> tuple[str, bytes]:
    """The mapping recorded on the delivery planned for ``control_id``, and its payload."""
    store = Store(database_url(tmp / "var" / "eai.db"), tmp / "var")
    deadline = time.monotonic() + timeout
    try:
        while True:
            with store.engine.connect() as conn:
                row = conn.execute(
                    select(deliveries.c.payload, deliveries.c.mapping).where(
                        deliveries.c.control_id == control_id
                    )
                ).first()
            if row is not None:
                break
            assert time.monotonic() < deadline, f"no delivery planned for {control_id}"
            time.sleep(0.05)
    finally:
        store.engine.dispose()
    return str(row.mapping), store.cipher.open(row.payload)
