"""The console's identity page over real HTTP: charter anomalies per establishment and
rule in French, held deliveries, and their release by an operator (audited), never by
a viewer. The engine runs in a thread; messages arrive over MLLP."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hl7.client import MLLPClient

from eai.store import list_audit
from standins.mllp import MllpPeer
from tests._console_site import ConsoleSite, csrf_of
from tests._identity_routes import HELD_ROUTES, INS, identity_msg
from tests.engine_harness import EngineThread

pytestmark = pytest.mark.integration

ROUTES = HELD_ROUTES + "console:\n  bind: 127.0.0.1:0\n"


class Site(ConsoleSite):
    def __init__(self, eng: EngineThread, dmp: MllpPeer) -> None:
        super().__init__(eng)
        self.eng, self.dmp = eng, dmp


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with MllpPeer() as dcc, MllpPeer() as dmp:
        path = tmp_path / "routes.yaml"
        path.write_text(ROUTES.format(data=tmp_path / "var", dcc=dcc.port, dmp=dmp.port))
        with EngineThread(path) as eng:
            s = Site(eng, dmp)
            s.add_accounts()
            with MLLPClient("127.0.0.1", eng.port("chu-x")) as c:
                for cid, kw in (("H1", {"pid32": "PROV"}), ("K4", {"pid32": "VALI",
                                "ins": "279035121518988"})):  # fmt: skip
                    assert b"MSA|AA" in c.send_message(identity_msg(cid, **kw))
            assert dcc.wait_for(lambda p: p.control_ids() == ["H1"], 10)
            yield s


def _wait_page(c: httpx.Client, needle: str) -> str:
    deadline = time.monotonic() + 10
    while True:  # the anomalies are written just after the ACK
        text = c.get("/identity").text
        if needle in text or time.monotonic() > deadline:
            return text
        time.sleep(0.1)


def test_viewer_sees_anomalies_and_held_deliveries_but_cannot_release(site: Site) -> None:
    with site.client("vera") as c:
        page = _wait_page(c, 'data-rule="INS-CLE"')
        groups = re.findall(r'data-facility="([^"]+)" data-rule="([^"]+)"', page)
        assert groups == [("CHU-X", "IDENTITE-NON-QUALIFIEE"), ("CHU-X", "INS-CLE")]
        ins_row = re.search(r'data-rule="INS-CLE".*?</tr>', page, re.S)
        assert ins_row and "Le matricule INS transmis en PID-3" in ins_row.group(0)
        assert 'class="severity">reject<' in ins_row.group(0)
        held = re.findall(r'<tr class="held" data-delivery="(\d+)">(.*?)</tr>', page, re.S)
        assert len(held) == 1 and "dmp" in held[0][1] and "(H1)" in held[0][1]
        assert "/release" not in page
        assert INS not in page and "279035121518988" not in page  # no patient id
        refused = c.post(
            f"/deliveries/{held[0][0]}/release",
            data={"csrf": csrf_of(page), "confirm": "yes"},
        )
        assert refused.status_code == 403
        filtered = c.get("/identity", params={"facility": "CHU-Y"}).text
        assert 'class="anomaly"' not in filtered
    assert site.dmp.control_ids() == []
    assert not [r for r in list_audit(site.store.engine) if r.entry.action == "identity-release"]


def test_operator_releases_a_held_delivery_audited_with_the_account(site: Site) -> None:
    with site.client("otto") as c:
        page = _wait_page(c, 'class="held"')
        m = re.search(r'action="(/deliveries/(\d+)/release\?m=\d+)"', page)
        assert m, page
        action, did = m.group(1), m.group(2)
        first = c.post(action, data={"csrf": csrf_of(page)})
        assert first.status_code == 200 and 'id="confirm"' in first.text
        time.sleep(0.3)
        assert site.dmp.control_ids() == []  # asked, not done
        done = c.post(action, data={"csrf": csrf_of(page), "confirm": "yes"})
        assert done.status_code == 200 and f"delivery {did} released" in done.text
        assert site.dmp.wait_for(lambda p: p.control_ids() == ["H1"], 10)
        assert 'class="held"' not in c.get("/identity").text
    (rec,) = [r for r in list_audit(site.store.engine) if r.entry.action == "identity-release"]
    assert rec.actor.name == "otto" and rec.actor.kind == "account"
    assert rec.actor.via == "console"
