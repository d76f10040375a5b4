"""What a delivery handed its destination, on the console's message page: the FHIR Bundle
of a ``map:`` route, the XDS metadata of a DMP publication (the DMP connector's own
preview, as ``eai dmp preview``). Patient data: for the operator role, on an explicit
action with a reason, recorded in the audit trail and the message's journey before it
is shown; refused to a viewer, and never in the HTML a viewer opens.

Real engines in a thread (MLLP in, the fhir-sink test destination or the DMP stand-in
over mutual TLS), over real HTTP.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine

from eai.store import Store, list_audit, message_detail
from standins.mllp import MllpPeer
from tests._console_site import ConsoleSite, csrf_of
from tests._crbio import ORU
from tests._fhir_sink import ROUTES as FHIR_SINK_ROUTES  # registers the fhir-sink type
from tests._mllp import MllpSender, msa
from tests._national import dmp_standin
from tests.engine_harness import A01, EngineThread

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

NAME = "PAT-TROIS"  # PID-5 of the national fixtures

ROUTES = FHIR_SINK_ROUTES + "console:\n  bind: 127.0.0.1:0\n"


def _wait(condition: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@contextmanager
def closing_after(store: Store) -> Iterator[Engine]:
    """The journal of an engine that has stopped, read after its store was closed: the
    reads open a new pool, closed again here (on PostgreSQL its connections would
    otherwise be left open until garbage collection)."""
    try:
        yield store.engine
    finally:
        store.engine.dispose()


class Site(ConsoleSite):
    timeout = 30.0

    def __init__(self, eng: EngineThread) -> None:
        super().__init__(eng)
        self.add_accounts()

    def delivery(self, message_id: int, destination: str) -> int:
        view = message_detail(self.store.engine, message_id)
        (d,) = [d for d in view.deliveries if d.destination == destination]
        return d.id


def test_operator_sees_the_fhir_bundle_once_the_read_is_recorded(tmp_path: Path) -> None:
    with MllpPeer() as peer:
        config = tmp_path / "routes.yaml"
        config.write_text(ROUTES.format(tmp=tmp_path, port=peer.port))
        with EngineThread(config) as eng:
            site = Site(eng)
            with MllpSender(eng.port("in")) as sender:
                assert msa(sender.exchange(A01))[0] == "AA"
            _wait(lambda: peer.received, "the MLLP delivery")
            _wait(lambda: len(message_detail(site.store.engine, 1).deliveries) == 2, "plan")
            fhir = site.delivery(1, "fhir")
            url = f"/deliveries/{fhir}/output"
            with site.client("vera") as c:
                page = c.get("/messages/1")
                assert page.status_code == 200 and url not in page.text
                assert NAME not in page.text
                refused = c.post(url, data={"csrf": csrf_of(page.text), "reason": "curious"})
                assert refused.status_code == 403 and NAME not in refused.text
            assert not [r for r in list_audit(site.store.engine) if r.entry.action == "read-raw"]
            with site.client("otto") as c:
                page = c.get("/messages/1")
                assert f'action="{url}"' in page.text
                csrf = csrf_of(page.text)
                assert c.post(url, data={"reason": "ticket 7"}).status_code == 403  # no CSRF
                assert c.post(url, data={"csrf": csrf, "reason": " "}).status_code == 400
                assert c.post("/deliveries/999/output", data={"csrf": csrf, "reason": "x"}
                              ).status_code == 404  # fmt: skip
                assert not [
                    r for r in list_audit(site.store.engine) if r.entry.action == "read-raw"
                ]
                shown = c.post(url, data={"csrf": csrf, "reason": "ticket 7"})
                assert shown.status_code == 200 and shown.headers["cache-control"] == "no-store"
                m = re.search(r'<pre id="bundle">(.*?)</pre>', shown.text, re.S)
                assert m, shown.text
                bundle = json.loads(html.unescape(m.group(1)))
                assert bundle["resourceType"] == "Bundle"
                kinds = {e["resource"]["resourceType"] for e in bundle["entry"]}
                assert "Patient" in kinds
                assert NAME in shown.text and 'id="mapping">pamfr-adt<' in shown.text
                mllp = site.delivery(1, "dcc")
                plain = c.post(f"/deliveries/{mllp}/output", data={"csrf": csrf, "reason": "t8"})
                assert plain.status_code == 200 and 'id="output"' in plain.text
                assert "MSH|" in plain.text  # the HL7 v2 message, as handed to the MLLP peer
    with closing_after(site.store) as journal:
        (rec, rec2) = sorted(
            (r for r in list_audit(journal) if r.entry.action == "read-raw"),
            key=lambda r: r.seq,
        )
        viewed = [e for e in message_detail(journal, 1).events if e.kind == "raw_viewed"]
    assert rec.actor.name == "otto" and rec.actor.via == "console"
    assert rec.entry.target == f"message 1 delivery {fhir}" and "ticket 7" in rec.entry.detail
    assert rec2.entry.target == f"message 1 delivery {mllp}"
    assert [e.delivery_id for e in viewed] == [fhir, mllp]
    assert "otto" in viewed[0].detail and "ticket 7" in viewed[0].detail


def test_operator_sees_the_dmp_metadata_as_eai_dmp_preview_builds_it(tmp_path: Path) -> None:
    with dmp_standin(tmp_path) as peer:
        routes = peer.routes(tmp_path)
        config = json.loads(routes.read_text())
        config["console"] = {"bind": "127.0.0.1:0"}
        routes.write_text(json.dumps(config))
        with EngineThread(routes) as eng:
            site = Site(eng)
            with MllpSender(eng.port("lab")) as sender:
                assert msa(sender.exchange(ORU))[0] == "AA"
            _wait(lambda: message_detail(site.store.engine, 1).deliveries, "the dmp delivery")
            dmp = site.delivery(1, "dmp")
            with site.client("otto") as c:
                csrf = csrf_of(c.get("/messages/1").text)
                shown = c.post(f"/deliveries/{dmp}/output", data={"csrf": csrf, "reason": "t9"})
            assert shown.status_code == 200, shown.text
            m = re.search(r'<pre id="metadata">(.*?)</pre>', shown.text, re.S)
            assert m, shown.text
            metadata = json.loads(html.unescape(m.group(1)))
            entry = metadata["documentEntry"]
            assert metadata["transaction"].startswith("ITI-41")
            assert entry["classCode"]["code"] == "10"
            assert entry["typeCode"]["code"] == "11502-2"
            assert entry["patientId"] == "279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH"
            assert any("PAT-TROIS" in t for t in entry["sourcePatientInfo"])  # read recorded
            assert "ClinicalDocument" not in shown.text  # metadata, not the document
    with closing_after(site.store) as journal:
        (rec,) = [r for r in list_audit(journal) if r.entry.action == "read-raw"]
    assert rec.actor.name == "otto" and rec.entry.target == f"message 1 delivery {dmp}"
