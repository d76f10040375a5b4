"""Routes with `map:`: checked at load, one conversion per mapping, the Bundle
sealed per delivery; routes without `map` keep the message byte for byte."""

import json
import os
import sys
from datetime import datetime

import pytest

import tests._fhir_sink  # noqa: F401 - registers the fhir-sink destination (map: routes)
from eai.config import load_config_text
from eai.errors import ConfigError
from eai.pipeline import plan_message
from eai.store import Cipher, ClaimedMessage
from tests.engine_harness import A01, adt

ROUTES = """
engine: {{data_dir: /tmp/x}}
listeners:
  - {{name: in, type: mllp, bind: "127.0.0.1:0", test_feed: true}}
destinations:
  - {{name: raw, type: mllp, host: 127.0.0.1, port: 1}}
  - {{name: fhir, type: fhir-sink}}
  - {{name: fhir2, type: fhir-sink}}
routes:
  - name: forward
    from: [in]
    to: [raw]
{extra}
"""

CIPHER = Cipher(os.urandom(32))


def _config(extra: str):
    return load_config_text(ROUTES.format(extra=extra), "routes.yaml", env={})


def _claimed(payload: bytes) -> ClaimedMessage:
    return ClaimedMessage(
        1, "in", datetime(2026, 1, 1), "hl7v2", "", "ADT^A01", CIPHER.seal(payload)
    )


def test_unknown_mapping_is_a_positioned_check_issue():
    extra = "  - name: m\n    from: [in]\n    to: [fhir]\n    map: pamfr-adtt\n"
    with pytest.raises(ConfigError) as info:
        _config(extra)
    (issue,) = info.value.issues
    assert (issue.line, issue.column) == (16, 5)
    assert "unknown mapping 'pamfr-adtt' (did you mean 'pamfr-adt'?)" in issue.message


def test_map_route_gets_the_bundle_others_the_message():
    extra = (
        "  - name: to-fhir\n    from: [in]\n    to: [fhir]\n    map: pamfr-adt\n"
        "  - name: to-fhir-auto\n    from: [in]\n    to: [fhir2]\n    map: auto\n"
    )
    plan = plan_message(_config(extra), CIPHER, _claimed(A01))
    assert plan.status == "processed"
    by_dest = {d.destination: d for d in plan.deliveries}
    assert by_dest["raw"].payload is None  # byte for byte: the journaled message
    for dest in ("fhir", "fhir2"):
        sealed = by_dest[dest].payload
        assert sealed is not None
        bundle = json.loads(CIPHER.open(sealed).decode("utf-8"))
        assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
        assert bundle["entry"][0]["resource"]["birthDate"] == "1979-03-28"
    assert CIPHER.open(by_dest["fhir"].payload) == CIPHER.open(by_dest["fhir2"].payload)


def test_a_message_the_mapping_cannot_convert_is_not_sent_on_that_route():
    extra = "  - name: to-fhir\n    from: [in]\n    to: [fhir]\n    map: pamfr-adt\n"
    bad = adt("77").replace(b"|19790328|", b"|1979XX28|")
    plan = plan_message(_config(extra), CIPHER, _claimed(bad))
    assert plan.status == "processed"
    assert [d.destination for d in plan.deliveries] == ["raw"]
    assert "route to-fhir: mapping pamfr-adt:" in plan.reason
    assert "1979XX28" not in plan.reason


def test_no_mapping_work_without_a_map_route(monkeypatch):
    monkeypatch.delitem(sys.modules, "mappings", raising=False)
    plan = plan_message(_config(""), CIPHER, _claimed(A01))
    assert plan.status == "processed"
    assert "mappings" not in sys.modules
