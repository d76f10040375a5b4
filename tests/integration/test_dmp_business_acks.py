"""ZAM^Z01 business acknowledgements end to end with examples/national-routes.yaml.

The national CR-BIO ORU (it asks for a receipt: ACK_RECEPTION = Y) goes over MLLP to
`eai run`, which publishes it to the stand-in DMP; the lab's MLLP peer (the route's
`business_acks: lab-return`, on RETURN_PORT) must then receive its ZAM^Z01, answered
ACK^Z01: Y when published, N with the registry's error when refused, one only after the
DMP was down for a while, and still sent when the engine is killed (-9) between the
DMP's outcome and the ZAM's send. What the peer receives is checked against the ANS
sample (zam_business_ack_dmp.er7) field by field and against HL7 2.6 with hl7apy.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_segment

from standins.dmp import Answer
from standins.mllp import MllpPeer, msh10
from tests._crbio import ORU, ack_z01
from tests._national import NationalDmp, national_dmp
from tests._paths import HL7V2
from tests._proc import EaiProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SAMPLE = (HL7V2 / "zam_business_ack_dmp.er7").read_bytes()


def segments(payload: bytes) -> list[list[str]]:
    text = payload.decode("utf-8").replace("\r\n", "\r").replace("\n", "\r")
    return [s.split("|") for s in text.split("\r") if s]


def check_zam(payload: bytes) -> list[list[str]]:
    """A ZAM^Z01 answering the ORU, shaped like the ANS sample: every field but the
    instance ones (MSH-7, MSH-10, EVN-2, OBX-5 and the ERR, which depend on the
    outcome) equal to the sample's; each segment valid HL7 2.6 (hl7apy, strict)."""
    got, sample = segments(payload), segments(SAMPLE)
    assert [s[0] for s in got[:3]] == ["MSH", "EVN", "OBX"]
    for seg in payload.decode("utf-8").strip("\r").split("\r"):
        parsed = parse_segment(seg, version="2.6", validation_level=VALIDATION_LEVEL.STRICT)
        assert parsed.validate(), seg
    msh, evn, obx = (list(s) for s in got[:3])
    for fields, index in ((msh, 6), (msh, 9), (evn, 2), (obx, 5)):
        fields[index] = ""
    want_msh, want_evn, want_obx = (list(s) for s in sample[:3])
    for fields, index in ((want_msh, 6), (want_msh, 9), (want_evn, 2), (want_obx, 5)):
        fields[index] = ""
    assert (msh, evn, obx) == (want_msh, want_evn, want_obx)
    return got


class National(NationalDmp):
    """The example config with its environment, the stand-in DMP and the lab's peer."""

    def send_oru(self) -> None:
        self.send(ORU)

    def journey(self) -> dict[str, Any]:
        """The journey of the only message."""
        (journey,) = self.journeys().values()
        return journey


@pytest.fixture
def national(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[National]:
    with national_dmp(tmp_path, monkeypatch, National) as example:
        yield example


def _wait(what: str, predicate: Any, timeout: float, eng: EaiProcess) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what}:\n{eng.stderr()[-3000:]}"
        time.sleep(0.1)


def _ours(journey: dict[str, Any]) -> list[dict[str, Any]]:
    """The DMP delivery and its follow-ups (the example also routes the ORU to SCAD)."""
    return [d for d in journey["deliveries"] if d["destination"] in ("dmp", "lab-return")]


def _settled(national: National) -> dict[str, Any]:
    """The ORU's journey once the DMP delivery and its ZAM are delivered or dead."""
    deadline = time.monotonic() + 30
    while True:
        journey = national.journey()
        rows = _ours(journey)
        if len(rows) == 2 and all(d["status"] in ("delivered", "dead") for d in rows):
            return journey
        assert time.monotonic() < deadline, rows
        time.sleep(0.2)


def test_a_published_document_gives_the_lab_a_zam_z01_y(national: National) -> None:
    with MllpPeer(ack_z01, port=national.return_port) as lab, national.engine() as eng:
        eng.start()
        national.send_oru()
        _wait("the ZAM", lambda: lab.received, 60, eng)
        journey = _settled(national)
        time.sleep(1.0)  # nothing more comes
        (zam,) = lab.received
    assert len(national.standin.published) == 1
    got = check_zam(zam)
    assert got[2][5] == "Y^^expandedYes-NoIndicator"
    assert [s[0] for s in got] == ["MSH", "EVN", "OBX"]
    dmp, back = _ours(journey)
    assert (dmp["destination"], dmp["status"]) == ("dmp", "delivered")
    assert (back["destination"], back["status"], back["follow_up_of"]) == (
        "lab-return",
        "delivered",
        dmp["id"],
    )
    (event,) = [e for e in journey["events"] if e["kind"] == "follow_up"]
    assert event["delivery_id"] == back["id"]
    assert event["detail"].startswith(
        f"business_ack ZAM^Z01 to lab-return, control id {msh10(zam)}"
    )


def test_a_registry_failure_gives_a_zam_n_with_the_registry_error(national: National) -> None:
    national.standin.answer = Answer("failure", errors=[("DMPClosed", "DMP fermé")])
    with MllpPeer(ack_z01, port=national.return_port) as lab, national.engine() as eng:
        eng.start()
        national.send_oru()
        _wait("the ZAM", lambda: lab.received, 60, eng)
        journey = _settled(national)
        (zam,) = lab.received
    assert national.standin.published == []
    got = check_zam(zam)
    assert got[2][5] == "N^^expandedYes-NoIndicator"
    assert got[3] == segments(SAMPLE)[3]  # ERR|||207^...|E|DMPClosed^DMP fermé^DMPERRORCODE
    assert [d["status"] for d in _ours(journey)] == ["dead", "delivered"]


def test_a_dmp_down_for_a_while_gives_one_publication_and_one_zam(national: National) -> None:
    national.standin.answer = Answer("http", status=503, times=2)
    with MllpPeer(ack_z01, port=national.return_port) as lab, national.engine() as eng:
        eng.start()
        national.send_oru()
        _wait("the ZAM", lambda: lab.received, 90, eng)
        journey = _settled(national)
        time.sleep(2.0)  # a duplicate would come within the return's retry delays
        zams = list(lab.received)
    assert [r.answered for r in national.standin.received] == ["http", "http", "success"]
    assert len(national.standin.published) == 1
    (zam,) = zams
    assert check_zam(zam)[2][5] == "Y^^expandedYes-NoIndicator"
    dmp, back = _ours(journey)
    assert (dmp["attempts"], back["attempts"]) == (3, 1)
    assert len([e for e in journey["events"] if e["kind"] == "follow_up"]) == 1


def test_a_kill9_between_the_outcome_and_the_zam_still_sends_it(national: National) -> None:
    """The lab's peer is down when the DMP answers: the ZAM waits in the outbox, the engine
    is killed (-9), the peer comes up, the engine restarts and the ZAM goes (at least once)."""
    eng = national.engine()
    try:
        eng.start()
        national.send_oru()
        _wait("the publication", lambda: national.standin.published, 60, eng)

        def zam_waiting() -> bool:
            rows = _ours(national.journey())
            return len(rows) == 2 and rows[1]["status"] == "retrying"

        _wait("the ZAM retried", zam_waiting, 30, eng)
        eng.kill9()
        with MllpPeer(ack_z01, port=national.return_port) as lab:
            eng.start()
            _wait("the ZAM after the restart", lambda: lab.received, 60, eng)
            journey = _settled(national)
            zams = list(lab.received)
    finally:
        eng.kill9()
    assert len(national.standin.published) == 1
    assert zams and all(z == zams[0] for z in zams)  # at least once, always the same ZAM
    assert check_zam(zams[0])[2][5] == "Y^^expandedYes-NoIndicator"
    assert [d["status"] for d in _ours(journey)] == ["delivered", "delivered"]
