"""What the identity server's answer does to a message's plan (holds, anomalies, cross-
reference writes, A40/A47), and the reconciler's outage tracking and alerts."""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import datetime

import pytest

from eai import hl7
from eai.config import IdentityConfig, load_config_text
from eai.identity_gate import SERVER_UNAVAILABLE, Reconciled
from eai.pipeline import identities_of, parse_all, plan_message
from eai.reconciler import Reconciler
from eai.store import Cipher, ClaimedMessage, MessagePlan, XrefRecord, XrefRedirect
from identity.patient import identity_from_hl7
from identity.pdqm import IdentityServerUnavailable
from identity.reconcile import reconcile
from tests._identity_server import SECRETS, TEST_OID, Clock, mock_client, service
from tests.engine_harness import A01, adt

CIPHER = Cipher(os.urandom(32))

ROUTES = """
listeners:
  - {name: in, type: mllp, bind: "127.0.0.1:0", test_feed: true}
destinations:
  - {name: dcc, type: mllp, host: 127.0.0.1, port: 1}
  - {name: dmp, type: mllp, host: 127.0.0.1, port: 2, require_qualified_identity: true}
routes:
  - {name: all, from: [in], to: [dcc, dmp]}
"""
CONFIG = load_config_text(ROUTES, env={})


def _claimed(payload: bytes, mid: int = 1) -> ClaimedMessage:
    return ClaimedMessage(mid, "in", datetime(2026, 1, 1), "hl7v2", "", "", CIPHER.seal(payload))


def _ask(payload: bytes) -> Reconciled:
    """What the stand-in (over a mock transport) says of the message's identity."""
    ident = identity_from_hl7(hl7.parse(payload))
    assert ident is not None

    async def scenario() -> Reconciled:
        async with mock_client(service()) as client:
            try:
                return await reconcile(client, ident)
            except IdentityServerUnavailable as exc:
                return exc

    return asyncio.run(scenario())


def _plan(payload: bytes, reconciled: Reconciled | None) -> MessagePlan:
    return plan_message(CONFIG, CIPHER, _claimed(payload), reconciled)


def _held(plan: MessagePlan) -> dict[str, str]:
    return {d.destination: d.held for d in plan.deliveries}


def test_a_match_records_the_regional_identity_and_sends_everywhere():
    plan = _plan(A01, _ask(A01))
    assert _held(plan) == {"dcc": "", "dmp": ""} and plan.release_held
    assert plan.identity_ops == (
        XrefRecord("CHU-X", "000003", "R0001", "279035121518989", TEST_OID),
    )
    assert plan.anomalies == ()
    assert "000003" not in repr(plan) and "R0001" not in repr(plan.identity_ops)


def test_a_trait_the_server_contradicts_holds_the_strict_destination_with_its_rule():
    other_date = A01.replace(b"|19790328|", b"|19790329|")
    plan = _plan(other_date, _ask(other_date))
    assert _held(plan)["dcc"] == ""
    assert _held(plan)["dmp"] == "identity held: SERVEUR-DATE-NAISSANCE"
    assert [a[0] for a in plan.anomalies] == ["SERVEUR-DATE-NAISSANCE"]
    assert not plan.release_held
    assert not any(isinstance(op, XrefRecord) for op in plan.identity_ops)


def test_an_unreachable_server_holds_the_strict_destination_without_an_anomaly():
    plan = _plan(A01, IdentityServerUnavailable("connection refused", 5.0))
    assert _held(plan) == {"dcc": "", "dmp": SERVER_UNAVAILABLE}
    assert plan.anomalies == ()  # the establishment has nothing to fix
    assert not plan.release_held and plan.identity_ops == ()


def test_without_a_server_the_charter_alone_decides():
    plan = _plan(A01, None)
    assert _held(plan) == {"dcc": "", "dmp": ""} and plan.identity_ops == ()


def _with_mrg(trigger: str, prior: str, survivor: str = "000003") -> bytes:
    base = adt("77", survivor, trigger=trigger).rstrip(b"\r")
    ins = "279035121518989^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.10&ISO^INS"
    mrg = f"MRG|{prior}^^^CHU-X&000897406&N^PI~{ins}"
    return base + b"\r" + mrg.encode() + b"\r"


@pytest.mark.parametrize("trigger", ["A40", "A47"])
def test_a40_and_a47_carry_the_redirect_of_the_local_id(trigger: str):
    plan = _plan(_with_mrg(trigger, "000099"), None)
    assert plan.identity_ops == (XrefRedirect(trigger, "CHU-X", "000099", "000003"),)  # type: ignore[arg-type]
    assert "000099" not in repr(plan)


def test_a40_matched_records_then_merges_in_that_order():
    message = _with_mrg("A40", "000099")
    ops = _plan(message, _ask(message)).identity_ops
    assert [type(op).__name__ for op in ops] == ["XrefRecord", "XrefRedirect"]


def test_an_mrg_naming_only_the_ins_is_no_redirect():
    base = adt("78", trigger="A40").rstrip(b"\r")
    mrg = b"MRG|279035121518989^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.10&ISO^INS"
    assert _plan(base + b"\r" + mrg + b"\r", None).identity_ops == ()


def test_identities_of_skips_what_cannot_be_parsed():
    claimed = [_claimed(A01, 1), _claimed(b"garbage", 2)]
    found = identities_of(CONFIG, claimed, parse_all(CONFIG, CIPHER, claimed))
    assert list(found) == [1]
    assert found[1].facility == "CHU-X"


# --- the reconciler: outages ---------------------------------------------------------------


def _identity_config() -> IdentityConfig:
    return IdentityConfig.model_validate(
        {"server": {"url": "http://identity.test/fhir", "regional_id_system": "urn:oid:1.2.3"}}
    )


def test_the_reconciler_tracks_an_outage_and_logs_its_start_and_end_once(caplog):
    svc = service()
    clock = Clock()
    reconciler = Reconciler(
        mock_client(svc, clock, outage_backoff=5.0), _identity_config(), clock=clock
    )
    ident = identity_from_hl7(hl7.parse(A01))
    assert ident is not None

    async def scenario() -> list[dict[int, Reconciled]]:
        answers = [await reconciler.reconcile_all({1: ident})]
        svc.fail_status = 503
        clock.now += 400  # past the cache
        answers.append(await reconciler.reconcile_all({2: ident, 3: ident}))
        assert reconciler.outage_since is not None and reconciler.unavailable_now()
        clock.now += 6  # past the back-off: asked again, still down
        answers.append(await reconciler.reconcile_all({4: ident}))
        svc.fail_status = None
        clock.now += 6
        answers.append(await reconciler.reconcile_all({5: ident}))
        await reconciler.aclose()
        return answers

    with caplog.at_level(logging.INFO):
        first, down, still, back = asyncio.run(scenario())
    assert first[1].outcome == "matched"  # type: ignore[union-attr]
    assert all(isinstance(a, IdentityServerUnavailable) for a in (*down.values(), still[4]))
    assert back[5].outcome == "matched"  # type: ignore[union-attr]
    assert reconciler.outage_since is None and not reconciler.unavailable_now()
    warnings = [r.getMessage() for r in caplog.records if r.name == "eai.reconciler"]
    assert len(warnings) == 2
    assert "unavailable" in warnings[0] and "answers again" in warnings[1]
    assert not any(s in caplog.text for s in SECRETS)


def test_alert_addresses_need_an_smtp_server():
    with pytest.raises(ValueError, match="alert_to needs identity.smtp"):
        IdentityConfig.model_validate(
            {
                "server": {
                    "url": "http://identity.test/fhir",
                    "regional_id_system": "urn:oid:1.2.3",
                    "alert_to": ["ops@grades.example"],
                }
            }
        )
