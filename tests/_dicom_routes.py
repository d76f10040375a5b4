"""The DICOM router test setup: routes.yaml with a ``dicom`` listener and two storescp peers.

Touches: files (writes routes.yaml), network and subprocesses (the engine and dcmtk's storescp).
Used by tests/integration/test_dicom_router.py and tests/fault/test_dicom_forward_child.py.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from eai.cli import cli
from standins.dicom import StoreScp
from tests.engine_harness import EngineThread

HOST = "127.0.0.1"

CALLERS = [f"MOD{i}" for i in range(12)]

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
    acse_timeout: 2s
    network_timeout: 5s
    max_pdu: 65536
    max_instance_size: 1048576
    retention: 0s
    allowed_callers:
{callers}
destinations:
  - name: plain
    type: dicom
    ae_title: PLAINSCP
    host: 127.0.0.1
    port: {plain_port}
    retry: {{initial: 0.2s, max: 1s, jitter: 0}}
  - name: marked
    type: dicom
    ae_title: MARKEDSCP
    host: 127.0.0.1
    port: {marked_port}
    retry: {{initial: 0.2s, max: 1s, jitter: 0}}
routes:
  - name: as-received
    from: [img]
    when: {{not: {{calling_ae: [ONLYMARKED]}}}}
    to: [plain]
  - name: marked
    from: [img]
    when: {{calling_ae: [{marked_callers}]}}
    to: [marked]
    coerce:
      - {{set: InstitutionName, value: CHU-X 750712184}}
      - {{set: IssuerOfPatientID, value: ASIP-SANTE-INS-NIR}}
      - {{set: "(0009,0010)", vr: LO, value: EAI ORIGIN}}
      - {{set: "(0009,1001)", vr: LO, value: "750712184"}}
      - set: OtherPatientIDsSequence
        items: [{{PatientID: "IPP-42", IssuerOfPatientID: CHU-X, TypeOfPatientID: TEXT}}]
"""


def write_routes(
    tmp: Path, plain: int, marked: int, marked_callers: list[str] | None = None
) -> Path:
    callers = "\n".join(
        f"      - {{ae_title: {ae}}}"
        for ae in [*CALLERS, "STORESCU", "ECHOSCU", "EAI", "ONLYMARKED", "NOWHERE"]
    )
    path = tmp / "routes.yaml"
    path.write_text(
        ROUTES.format(
            tmp=tmp,
            callers=callers,
            plain_port=plain,
            marked_port=marked,
            marked_callers=", ".join(marked_callers or ["ONLYMARKED"]),
        )
    )
    return path


@contextlib.contextmanager
def router(
    tmp: Path, marked_callers: list[str] | None = None
) -> Iterator[tuple[EngineThread, StoreScp, StoreScp, Path]]:
    with (
        StoreScp(tmp / "plain", "PLAINSCP") as plain,
        StoreScp(tmp / "marked", "MARKEDSCP") as marked,
    ):
        config = write_routes(tmp, plain.port, marked.port, marked_callers)
        with EngineThread(config) as eng:
            yield eng, plain, marked, config


def deliveries(cfg: Path) -> list[dict[str, Any]]:
    result = CliRunner().invoke(cli, ["messages", "list", "-c", str(cfg), "--json"])
    assert result.exit_code == 0, result.output
    return [d for m in json.loads(result.output) for d in m["deliveries"]]
