"""plan_message: parse, patient key, routing, optional hl7apy structure validation."""

import os
from datetime import datetime

from eai.config import load_config_text
from eai.pipeline import plan_all, plan_message
from eai.store import Cipher, ClaimedMessage, local_ordering_key
from tests.engine_harness import A01, adt

ROUTES = """
engine: {{data_dir: /tmp/x}}
listeners:
  - {{name: in, type: mllp, bind: "127.0.0.1:0", test_feed: true}}
destinations:
  - {{name: dcc, type: mllp, host: 127.0.0.1, port: 1}}
  - {{name: other, type: mllp, host: 127.0.0.1, port: 2}}
routes:
  - name: adt
    from: [in]
    when: {{message_type: [ADT^A01], field: PV1-2, in: [I, O]}}
    to: [dcc]
{extra}
"""

CIPHER = Cipher(os.urandom(32))


def _claimed(payload: bytes, mid: int = 1, content_type: str = "hl7v2") -> ClaimedMessage:
    return ClaimedMessage(
        mid, "in", datetime(2026, 1, 1), content_type, "", "", CIPHER.seal(payload)
    )


def _config(extra: str = ""):
    return load_config_text(ROUTES.format(extra=extra), "routes.yaml", env={})


def test_routed_with_patient_key_and_ids():
    plan = plan_message(_config(), CIPHER, _claimed(A01))
    assert plan.status == "processed"
    assert [d.destination for d in plan.deliveries] == ["dcc"]
    assert plan.deliveries[0].route == "adt"
    assert plan.control_id == "3975"
    assert CIPHER.hash_id("000003") in plan.patient_id_hashes
    assert CIPHER.hash_id("279035121518989") in plan.patient_id_hashes
    # the ordering key of the local id (facility, PID-3): cross-references may redirect it
    assert plan.patient_key == local_ordering_key(CIPHER, "CHU-X", "000003")
    assert plan.patient_local == ("CHU-X", CIPHER.hash_id("000003"))
    assert "000003" not in repr(plan)


def test_no_route_is_filtered_not_dropped():
    plan = plan_message(_config(), CIPHER, _claimed(adt("9", trigger="A28")))
    assert plan.status == "filtered" and plan.deliveries == ()


def test_same_patient_same_key_other_patient_other_key():
    a = plan_message(_config(), CIPHER, _claimed(adt("1", "P1")))
    b = plan_message(_config(), CIPHER, _claimed(adt("2", "P1")))
    c = plan_message(_config(), CIPHER, _claimed(adt("3", "P2")))
    assert a.patient_key == b.patient_key != c.patient_key


def test_unparseable_is_rejected_and_errors_do_not_stop_the_batch():
    plans = plan_all(
        _config(),
        CIPHER,
        [_claimed(b"garbage", 1), _claimed(A01, 2), _claimed(b"<x/>", 3, "no-such-type")],
    )
    assert [p.status for p in plans] == ["rejected", "processed", "rejected"]
    assert "content type" in plans[2].reason


VALIDATING = """
  - name: strict
    from: [in]
    validate_structure: true
    to: [other]
"""


def test_structure_validation_on_a_route():
    good = plan_message(_config(VALIDATING), CIPHER, _claimed(A01))
    assert {d.destination for d in good.deliveries} == {"dcc", "other"}
    assert good.reason == ""
    text = A01.decode().replace("\r\n", "\r").replace("\n", "\r")
    no_pv1 = "\r".join(s for s in text.split("\r") if not s.startswith("PV1")).encode()
    bad = plan_message(_config(VALIDATING), CIPHER, _claimed(no_pv1))
    # the non-validating route matches nothing without PV1-2; the strict one refuses
    assert bad.status == "rejected"
    assert "PV1" in bad.reason


def test_structure_problem_never_quotes_values():
    text = (
        A01.decode().replace("\r\n", "\r").replace("\n", "\r").replace("|19790328|", "|1979X328|")
    )
    plan = plan_message(_config(VALIDATING), CIPHER, _claimed(text.encode()))
    assert "dcc" in {d.destination for d in plan.deliveries}
    assert "other" not in {d.destination for d in plan.deliveries}
    assert plan.reason.startswith("HL7 structure:")
    assert "1979X328" not in plan.reason


RETURNING = """
  - name: back
    from: [in]
    when: {message_type: [ADT^A01]}
    to: [other]
    business_acks: dcc
"""


def test_a_routes_business_acks_is_the_return_destination_of_its_deliveries():
    plan = plan_message(_config(RETURNING), CIPHER, _claimed(A01))
    assert {(d.destination, d.return_to) for d in plan.deliveries} == {
        ("dcc", ""),
        ("other", "dcc"),
    }
