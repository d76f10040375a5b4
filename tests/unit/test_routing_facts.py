"""Routes on routing facts (``fact:``): config checks, evaluation, the pipeline passing facts."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

import pytest
from pydantic import ValidationError

from eai.config import When, config_json_schema, load_config_text
from eai.errors import ConfigError
from eai.pipeline import plan_message
from eai.routing import evaluate, when_matches
from eai.store import Cipher, ClaimedMessage
from tests._paths import HL7V2
from tests._routing import msg, route
from tests.engine_harness import A01

ORU = (HL7V2 / "oru_r01_crbio_init.hl7").read_bytes()
MDM = (HL7V2 / "mdm_t02_crimg_init.er7").read_bytes()

FACTS = {"DESTDMP": "Y", "DESTMSSANTEPAT": "N", "document_action": "new", "mss_recipients": "2"}


def when(data: dict[str, Any]) -> When:
    return When.model_validate(data)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"fact": "DESTDMP", "equals": "Y"}, True),
        ({"fact": "DESTDMP", "equals": "N"}, False),
        ({"fact": "document_action", "in": ["replace", "delete"]}, False),
        ({"fact": "document_action", "in": ["new", "replace"]}, True),
        ({"fact": "mss_recipients", "matches": "^[1-9]"}, True),
        ({"fact": "DESTMSSANTEPAT", "exists": True}, True),
        ({"fact": "CONNEXION_SECRETE", "exists": False}, True),
        ({"fact": "CONNEXION_SECRETE", "equals": ""}, True),
        ({"fact": "CONNEXION_SECRETE", "exists": True}, False),
    ],
)
def test_fact_comparators(condition: dict[str, Any], expected: bool) -> None:
    assert when_matches(when(condition), msg("ORU^R01"), FACTS) is expected


def test_facts_default_to_none() -> None:
    assert not when_matches(when({"fact": "DESTDMP", "equals": "Y"}), msg("ORU^R01"))
    assert when_matches(when({"fact": "DESTDMP", "exists": False}), msg("ORU^R01"))


def test_facts_reach_nested_conditions() -> None:
    condition = when(
        {
            "all": [
                {"message_type": ["ORU", "MDM"]},
                {"field": "OBX-2", "equals": "ED"},
                {"not": {"fact": "DESTDMP", "equals": "N"}},
                {"any": [{"fact": "document_action", "equals": "new"}, {"fact": "x", "exists": 1}]},
            ]
        }
    )
    message = msg("ORU^R01", {"OBX-2": "ED"})
    assert when_matches(condition, message, FACTS)
    assert not when_matches(condition, message, {**FACTS, "DESTDMP": "N"})
    assert not when_matches(condition, message, {})


def test_evaluate_passes_facts() -> None:
    routes = [
        route("dmp", {"fact": "DESTDMP", "equals": "Y"}, to=["dmp"]),
        route("mss-patient", {"fact": "DESTMSSANTEPAT", "equals": "Y"}, to=["mss"]),
        route("all", to=["archive"]),
    ]
    decision = evaluate(routes, "in", msg("ORU^R01"), FACTS)
    assert decision.routes == ("dmp", "all")
    assert decision.destinations == ("dmp", "archive")
    assert evaluate(routes, "in", msg("ORU^R01")).routes == ("all",)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"fact": "DESTDMP"}, "'fact' needs one of: in, equals, matches, exists"),
        (
            {"fact": "DESTDMP", "equals": "Y", "exists": True},
            "'fact' takes exactly one of in, equals, matches, exists; got equals, exists",
        ),
        (
            {"field": "OBX-2", "fact": "DESTDMP", "equals": "Y"},
            "'field' and 'fact' cannot be tested in one condition: combine two with 'all'",
        ),
        ({"fact": "DEST DMP", "equals": "Y"}, "String should match pattern"),
        ({"fact": "", "equals": "Y"}, "String should match pattern"),
    ],
)
def test_fact_model_errors(data: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError) as info:
        when(data)
    assert problem in str(info.value)


BASE = """\
engine: {data_dir: /tmp/x}
listeners:
  - {name: in, type: mllp, bind: "127.0.0.1:0", test_feed: true}
destinations:
  - {name: dmp, type: mllp, host: 127.0.0.1, port: 1}
  - {name: mss, type: mllp, host: 127.0.0.1, port: 2}
routes:
"""


def _issues(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "routes.yaml", env={})
    return [str(i) for i in info.value.issues]


def test_config_error_points_at_the_fact_key() -> None:
    text = BASE + (
        "  - name: r\n"
        "    from: [in]\n"
        "    to: [dmp]\n"
        "    when: {field: OBX-2, fact: DESTDMP, equals: Y}\n"
    )
    assert _issues(text) == [
        "routes.yaml:11:26: routes[0].when.fact: 'field' and 'fact' cannot be tested in one "
        "condition: combine two with 'all'"
    ]


def test_config_fact_without_comparator() -> None:
    text = BASE + "  - name: r\n    from: [in]\n    to: [dmp]\n    when:\n      fact: DESTDMP\n"
    assert _issues(text) == [
        "routes.yaml:12:7: routes[0].when.fact: 'fact' needs one of: in, equals, matches, exists"
    ]


def test_schema_shows_fact() -> None:
    props = config_json_schema()["$defs"]["When"]["properties"]
    assert "fact" in props
    assert "DESTDMP" in props["fact"]["description"]
    assert "field or fact" in props["equals"]["description"]


ROUTES = (
    BASE
    + """\
  - name: to-dmp
    from: [in]
    when: {all: [{message_type: [ORU, MDM]}, {fact: DESTDMP, equals: "Y"}]}
    to: [dmp]
  - name: to-patient
    from: [in]
    when: {fact: DESTMSSANTEPAT, equals: "Y"}
    to: [mss]
"""
)

CIPHER = Cipher(os.urandom(32))


def _plan(payload: bytes) -> Any:
    config = load_config_text(ROUTES, "routes.yaml", env={})
    claimed = ClaimedMessage(1, "in", datetime(2026, 1, 1), "hl7v2", "", "", CIPHER.seal(payload))
    return plan_message(config, CIPHER, claimed)


def test_pipeline_routes_on_cisis_facts() -> None:
    oru = _plan(ORU)  # DESTDMP Y, DESTMSSANTEPAT Y
    assert oru.status == "processed"
    assert [d.destination for d in oru.deliveries] == ["dmp", "mss"]
    mdm = _plan(MDM)  # DESTDMP Y, DESTMSSANTEPAT N
    assert [d.destination for d in mdm.deliveries] == ["dmp"]
    adt = _plan(A01)  # no facts
    assert adt.status == "filtered"
