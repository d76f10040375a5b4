"""The identity gate in the pipeline: charter severities, holds, per-listener status table."""

import os
from datetime import datetime

from eai.config import load_config_text
from eai.pipeline import plan_message
from eai.store import Cipher, ClaimedMessage
from tests.engine_harness import A01

CIPHER = Cipher(os.urandom(32))

ROUTES = """
listeners:
  - name: in
    type: mllp
    bind: "127.0.0.1:0"
    test_feed: {test_feed}
{status}
destinations:
  - {{name: dcc, type: mllp, host: 127.0.0.1, port: 1}}
  - {{name: dmp, type: mllp, host: 127.0.0.1, port: 2, require_qualified_identity: true}}
routes:
  - {{name: all, from: [in], to: [dcc, dmp]}}
"""


def _plan(payload: bytes = A01, *, test_feed: bool = True, status: str = ""):
    cfg = load_config_text(ROUTES.format(test_feed=str(test_feed).lower(), status=status), env={})
    claimed = ClaimedMessage(1, "in", datetime(2026, 1, 1), "hl7v2", "", "", CIPHER.seal(payload))
    return plan_message(cfg, CIPHER, claimed)


def _held(plan):
    return {d.destination: d.held for d in plan.deliveries}


def test_qualified_identity_goes_everywhere_and_releases_holds():
    plan = _plan()
    assert plan.status == "processed"
    assert _held(plan) == {"dcc": "", "dmp": ""}
    assert plan.release_held and plan.anomalies == ()


def test_unqualified_identity_is_held_for_strict_destinations_only():
    text = A01.decode().replace("|N||VALI|", "|N||PROV|")
    plan = _plan(text.encode())
    held = _held(plan)
    assert held["dcc"] == "" and held["dmp"].startswith("identity")
    assert [a[0] for a in plan.anomalies] == ["IDENTITE-NON-QUALIFIEE"]
    assert not plan.release_held


def test_reject_rule_routes_nowhere():
    plan = _plan(test_feed=False)  # the fixture's INS test OID on a production feed
    assert plan.status == "rejected" and plan.deliveries == ()
    assert "INS-OID" in plan.reason
    assert plan.facility == "CHU-X"


def test_listener_overrides_the_status_table():
    status = "    identity_status:\n      VALI: {with_ins: VALI, without_ins: VALI}"
    plan = _plan(status=status)
    assert _held(plan)["dmp"] != ""  # VALI + INS is no longer QUAL on this listener
    assert "IDENTITE-NON-QUALIFIEE" in [a[0] for a in plan.anomalies]
