"""The destination contract: what an outbox item says it carries, and who may take it.

The pipeline's plan gives each delivery its media type, route, mapping and the
message's facts (sealed); the delivery worker opens them into the OutboxItem; a
destination's config declares its pool width and timeouts; ``eai check`` refuses a
route that hands a destination a media type it does not accept.
"""

from __future__ import annotations

import asyncio
import os
from datetime import datetime

import pytest

import tests._facts_sink  # noqa: F401 - registers the facts-sink destination (reads facts)
import tests._fhir_sink  # noqa: F401 - registers the fhir-sink destination (map: routes)
from connectors.mllp.destination import MllpDestination, MllpDestinationConfig
from dicom_router.forward import DicomDestinationConfig
from eai.config import DestinationConfig, load_config_text
from eai.delivery import outbox_item
from eai.engine import lease_problems
from eai.errors import ConfigError, PermanentDeliveryError
from eai.messages import (
    MEDIA_DICOM_REF,
    MEDIA_FHIR_JSON,
    MEDIA_HL7V2,
    MessageFacts,
    OutboxItem,
    Recipient,
    SendLimits,
)
from eai.pipeline import plan_message
from eai.store import Cipher, ClaimedDelivery, ClaimedMessage
from tests._cisis import ORU
from tests.engine_harness import A01

CIPHER = Cipher(os.urandom(32))
INS = "279035121518989"

ROUTES = """
engine: {data_dir: /tmp/x}
listeners:
  - {name: in, type: mllp, bind: "127.0.0.1:0", test_feed: true}
destinations:
  - {name: raw, type: mllp, host: 127.0.0.1, port: 1}
  - {name: fhir, type: fhir-sink}
  - {name: reader, type: facts-sink}
routes:
  - {name: as-is, from: [in], to: [raw, reader]}
  - {name: mapped, from: [in], to: [fhir], map: auto}
"""


def _plan(payload: bytes, message_type: str):  # type: ignore[no-untyped-def]
    config = load_config_text(ROUTES, "routes.yaml", env={})
    claimed = ClaimedMessage(
        1, "in", datetime(2026, 1, 1), "hl7v2", "", message_type, CIPHER.seal(payload)
    )
    plan = plan_message(config, CIPHER, claimed)
    assert plan.status == "processed", plan.reason
    return {d.destination: d for d in plan.deliveries}


def _facts(sealed: bytes | None) -> MessageFacts:
    assert sealed is not None
    return MessageFacts.from_json(CIPHER.open(sealed))


def test_each_delivery_says_its_media_type_route_and_mapping() -> None:
    by_dest = _plan(A01, "ADT^A01")
    raw, fhir = by_dest["raw"], by_dest["fhir"]
    assert (raw.route, raw.media_type, raw.mapping) == ("as-is", MEDIA_HL7V2, "")
    assert (fhir.route, fhir.media_type, fhir.mapping) == ("mapped", MEDIA_FHIR_JSON, "pamfr-adt")


def test_the_qualified_ins_and_the_zfa_facts_travel_sealed() -> None:
    by_dest = _plan(A01, "ADT^A01")
    facts = _facts(by_dest["reader"].facts)
    assert (facts.ins, facts.ins_oid) == (INS, "1.2.250.1.213.1.4.10")
    assert facts.flags["DMP_OPPOSITION"] == "N"
    assert by_dest["reader"].facts is not None and INS.encode() not in by_dest["reader"].facts
    assert INS not in repr(facts)


def test_cisis_flags_and_prt_recipients_travel_without_reparsing() -> None:
    by_dest = _plan(ORU, "ORU^R01")
    facts = _facts(by_dest["fhir"].facts)
    assert by_dest["fhir"].mapping == "cisis-oru-mdm"
    assert facts.flags["DESTDMP"] == "Y" and facts.flags["document_action"] == "new"
    assert [(r.role, r.kind) for r in facts.recipients] == [
        ("SB", "professional"),
        ("RCT", "professional"),
        ("RCT", "patient"),
        ("REPLY", "address"),
    ]
    patient = next(r for r in facts.recipients if r.kind == "patient")
    assert patient.address  # the patient's mailbox, for an MSSante destination
    assert patient.address not in repr(facts.recipients)


def test_an_unqualified_identity_gives_no_ins() -> None:
    unqualified = A01.replace(b"|VALI", b"|PROV")
    assert unqualified != A01
    facts = _facts(_plan(unqualified, "ADT^A01")["reader"].facts)
    assert facts.ins == "" and facts.flags  # the ZFA facts are still there


def test_a_destination_that_reads_no_facts_gets_none() -> None:
    """MLLP sends the payload as it is: its rows carry no sealed facts (the pipeline
    seals them only for destinations whose spec says ``reads_facts``)."""
    by_dest = _plan(A01, "ADT^A01")
    assert by_dest["raw"].facts is None
    assert _facts(by_dest["reader"].facts).ins == INS


def test_a_message_routed_only_to_destinations_without_facts_seals_none() -> None:
    routes = ROUTES.replace("to: [raw, reader]", "to: [raw]").replace(
        "port: 1}", "port: 1, require_qualified_identity: true}"
    )
    config = load_config_text(routes, "routes.yaml", env={})
    claimed = ClaimedMessage(
        1, "in", datetime(2026, 1, 1), "hl7v2", "", "ADT^A01", CIPHER.seal(A01)
    )
    plan = plan_message(config, CIPHER, claimed)
    (raw,) = [d for d in plan.deliveries if d.destination == "raw"]
    # nor the INS for the held rows it releases: only raw holds, and it reads no facts
    assert raw.facts is None and plan.release_held and plan.qualified_facts is None


def test_facts_round_trip() -> None:
    facts = MessageFacts(
        {"DESTDMP": "Y"}, (Recipient("RCT", "patient", "x@patient.mssante.fr", "1", "2", "INS"),)
    )
    assert MessageFacts.from_json(facts.to_json()) == facts
    assert MessageFacts.from_json(MessageFacts().to_json()).is_empty()


def _claimed(**kw: object) -> ClaimedDelivery:
    fields: dict[str, object] = dict(
        id=7,
        message_id=3,
        destination="img",
        patient_key="k",
        control_id="1.2.3",
        attempts=0,
        sealed_payload=CIPHER.seal(b"{}"),
    )
    return ClaimedDelivery(**(fields | kw))  # type: ignore[arg-type]


def test_outbox_item_of_a_row_older_than_the_contract() -> None:
    item = outbox_item(_claimed(content_type="dicom"), CIPHER, 2)
    assert (item.media_type, item.mapping, item.attempts) == (MEDIA_DICOM_REF, "", 2)
    assert item.facts.is_empty() and item.payload == b"{}"


def test_outbox_item_opens_the_facts() -> None:
    sealed = CIPHER.seal(MessageFacts(ins=INS, ins_oid="1.2.250.1.213.1.4.8").to_json())
    row = _claimed(route="r", media_type=MEDIA_FHIR_JSON, mapping="m", sealed_facts=sealed)
    item = outbox_item(row, CIPHER, 1)
    assert (item.route, item.media_type, item.mapping, item.facts.ins) == (
        "r",
        MEDIA_FHIR_JSON,
        "m",
        INS,
    )
    assert INS not in repr(item) and "{}" not in repr(item)


def test_send_limits_are_declared_by_the_config() -> None:
    mllp = MllpDestinationConfig.model_validate(
        {"name": "d", "host": "h", "port": 1, "connections": 3, "ack_timeout": "7s"}
    )
    assert mllp.send_limits() == SendLimits(3, 10.0, 7.0)
    dicom = DicomDestinationConfig.model_validate(
        {"name": "d", "ae_title": "X", "host": "h", "port": 1, "connections": 2}
    )
    assert dicom.send_limits() == SendLimits(2, 10.0, 90.0)
    plain = DestinationConfig.model_validate({"name": "d", "type": "any"})
    assert plain.send_limits() == SendLimits()


def test_mllp_destination_refuses_another_media_type_for_good() -> None:
    dest = MllpDestination(MllpDestinationConfig(name="d", host="127.0.0.1", port=1))
    item = OutboxItem(1, 1, "d", b"{}", "c", "k", media_type=MEDIA_FHIR_JSON)
    with pytest.raises(PermanentDeliveryError, match="not application/fhir\\+json"):
        asyncio.run(dest.send(item))


CHECKED = """\
engine: {data_dir: /tmp/x}
listeners:
  - {name: in, type: mllp, bind: "127.0.0.1:0", test_feed: true}
  - {name: img, type: dicom, ae_title: EAI, bind: "127.0.0.1:0", spool_dir: /tmp/s,
     allowed_callers: [{ae_title: CT1}]}
destinations:
  - {name: dcc, type: mllp, host: 127.0.0.1, port: 1}
  - {name: pacs, type: dicom, ae_title: PACS, host: 127.0.0.1, port: 2}
  - {name: fhir, type: fhir-sink}
routes:
  - {name: ok, from: [in], to: [dcc]}
  - {name: ok-map, from: [in], to: [fhir], map: pamfr-adt}
  - {name: ok-img, from: [img], to: [pacs]}
  - {name: bad-map, from: [in], to: [fhir, dcc], map: pamfr-adt}
  - {name: bad-img, from: [img], to: [dcc]}
  - {name: bad-hl7, from: [in], to: [pacs]}
"""


def test_check_refuses_a_route_handing_a_destination_what_it_does_not_accept() -> None:
    with pytest.raises(ConfigError) as info:
        load_config_text(CHECKED, "routes.yaml", env={})
    found = [(i.line, i.column, i.message) for i in info.value.issues]
    assert [(line, col) for line, col, _ in found] == [(14, 44), (15, 39), (16, 38)]
    assert found[0][2] == (
        "routes[3].to[1]: destination 'dcc' (mllp) accepts application/hl7-v2, "
        "application/cda+xml; this route hands it the FHIR Bundle of map: pamfr-adt in "
        "application/fhir+json"
    )
    assert "application/vnd.eai.dicom-ref+json" in found[1][2]
    assert "destination 'pacs' (dicom)" in found[2][2]


def test_a_send_longer_than_the_delivery_lease_is_reported() -> None:
    config = load_config_text(
        ROUTES.replace(
            "engine: {data_dir: /tmp/x}", "engine: {data_dir: /tmp/x, lease: 45s}"
        ).replace("port: 1}", "port: 1, ack_timeout: 40s}"),
        "routes.yaml",
        env={},
    )
    assert lease_problems(config) == [
        "destination raw: one send may take 50 s, longer than engine.lease (45 s): another "
        "node may send it again meanwhile"
    ]
    assert lease_problems(load_config_text(ROUTES, "routes.yaml", env={})) == []
