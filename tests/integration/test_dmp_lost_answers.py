"""A DMP answer lost after the registry applied the request, end to end with
examples/national-routes.yaml: the stand-in applies the ITI-41 (or the ITI-57 deletion)
then closes the connection without answering; eai retries and the registry answers that
it is already in the requested state (the same uniqueId with the same hash:
``XDSDuplicateUniqueIdInRegistry``; the entry already ``Deleted``: its OriginalStatus no
longer holds). On a retry that is a delivery, said so in its detail, with one ZAM^Z01 Y
and no second publication; on a first attempt the same answer stays a dead letter (ZAM N);
a uniqueId registered with another hash (``XDSNonIdenticalHash``) is refused even on a
retry. Each test fails on the code before this change."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.dmp._response import RegistryFailure, read_response
from standins.dmp import Answer
from standins.dmp.server import registry_response
from standins.mllp import MllpPeer
from tests._crbio import ack_z01, crbio_oru
from tests._national import NationalDmp, national_dmp
from tests._proc import EaiProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

DELETED = "urn:asip:ci-sis:2010:StatusType:Deleted"
YES, NO = "Y^^expandedYes-NoIndicator", "N^^expandedYes-NoIndicator"


def obx5(zam: bytes) -> tuple[str, str]:
    """(OBX-4: the control id answered, OBX-5: Y or N) of a ZAM^Z01."""
    obx = next(s for s in zam.decode().split("\r") if s.startswith("OBX|")).split("|")
    return obx[4], obx[5]


class National(NationalDmp):
    def settled(self, control_id: str, eng: EaiProcess) -> dict[str, Any]:
        """``control_id``'s journey once its DMP delivery and its ZAM are final."""
        deadline = time.monotonic() + 60
        while True:
            journey = self.journeys().get(control_id)
            rows = _ours(journey) if journey else []
            if len(rows) == 2 and all(d["status"] in ("delivered", "dead") for d in rows):
                assert journey is not None
                return journey
            assert time.monotonic() < deadline, f"{rows}\n{eng.stderr()[-3000:]}"
            time.sleep(0.2)


def _ours(journey: dict[str, Any]) -> list[dict[str, Any]]:
    return [d for d in journey["deliveries"] if d["destination"] in ("dmp", "lab-return")]


def _details(journey: dict[str, Any], delivery_id: int) -> str:
    return " | ".join(
        str(e["detail"]) for e in journey["events"] if e.get("delivery_id") == delivery_id
    )


@pytest.fixture
def national(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[National]:
    with national_dmp(tmp_path, monkeypatch, National) as example:
        yield example


def test_a_publication_whose_answer_was_lost_is_delivered_once(national: National) -> None:
    """...and the same document sent again by a new message (a first attempt) is dead."""
    national.standin.answer = Answer("drop", times=1)
    with MllpPeer(ack_z01, port=national.return_port) as lab, national.engine() as eng:
        eng.start()
        national.send(crbio_oru("LOST-1"))
        journey = national.settled("LOST-1", eng)
        time.sleep(1.5)  # a second ZAM would come within the return's retry delays
        national.send(crbio_oru("AGAIN"))
        again = national.settled("AGAIN", eng)
        zams = list(lab.received)
    assert [r.answered for r in national.standin.received] == ["drop", "failure", "failure"]
    assert national.standin.received[1].checked is not None
    assert [c for c, _ in national.standin.received[1].checked.errors] == [
        "XDSDuplicateUniqueIdInRegistry"
    ]
    assert len(national.standin.published) == 1
    dmp, back = _ours(journey)
    assert (dmp["status"], dmp["attempts"], back["status"]) == ("delivered", 2, "delivered")
    assert "already published by an earlier attempt" in _details(journey, dmp["id"])
    first, _ = _ours(again)
    assert (first["status"], first["attempts"]) == ("dead", 1)
    assert "XDSDuplicateUniqueIdInRegistry" in _details(again, first["id"])
    assert [obx5(z) for z in zams] == [("LOST-1", YES), ("AGAIN", NO)]


def test_a_deletion_whose_answer_was_lost_is_delivered_once(national: National) -> None:
    """...and a second deletion message (a first attempt) is dead: already Deleted."""
    with MllpPeer(ack_z01, port=national.return_port) as lab, national.engine() as eng:
        eng.start()
        national.send(crbio_oru("PUB-1"))
        national.settled("PUB-1", eng)
        national.standin.answer = Answer("drop", times=1)
        national.send(crbio_oru("DEL-1", delete=True))
        journey = national.settled("DEL-1", eng)
        time.sleep(1.5)
        national.send(crbio_oru("DEL-2", delete=True))
        twice = national.settled("DEL-2", eng)
        zams = list(lab.received)
    itis = [(r.transaction, r.answered) for r in national.standin.received]
    assert itis == [
        ("ITI-41", "success"),
        ("ITI-57", "drop"),
        ("ITI-57", "failure"),
        ("ITI-57", "failure"),
    ]
    assert len(national.standin.updated) == 1
    assert [e[1] for e in national.standin.entries.values()].count(DELETED) == 1
    dmp, back = _ours(journey)
    assert (dmp["status"], dmp["attempts"], back["status"]) == ("delivered", 2, "delivered")
    assert "already deleted by an earlier attempt" in _details(journey, dmp["id"])
    first, _ = _ours(twice)
    assert (first["status"], first["attempts"]) == ("dead", 1)
    assert DELETED in _details(twice, first["id"])
    assert sorted(obx5(z) for z in zams) == [("DEL-1", YES), ("DEL-2", NO), ("PUB-1", YES)]


def test_the_uniqueid_with_another_hash_is_refused_even_on_a_retry(national: National) -> None:
    """The stand-in answers a known uniqueId with another hash XDSNonIdenticalHash (IHE ITI
    TF-3 4.2.4.1): the document changed, so no earlier attempt published it; that answer is
    a failure on a first attempt and on a retry alike."""
    with MllpPeer(ack_z01, port=national.return_port) as lab, national.engine() as eng:
        eng.start()
        national.send(crbio_oru("FIRST"))
        national.settled("FIRST", eng)
        national.send(crbio_oru("CHANGED", cda_suffix=b"\n<!-- changed -->\n"))
        journey = national.settled("CHANGED", eng)
        zams = {obx5(z)[0]: obx5(z)[1] for z in lab.received}
    last = national.standin.received[-1]
    assert last.checked is not None
    assert [c for c, _ in last.checked.errors] == ["XDSNonIdenticalHash"]
    dmp, _ = _ours(journey)
    assert dmp["status"] == "dead"
    assert "XDSNonIdenticalHash" in _details(journey, dmp["id"])
    assert len(national.standin.published) == 1
    assert zams == {"FIRST": YES, "CHANGED": NO}
    answer = registry_response(last.checked.errors)
    with pytest.raises(RegistryFailure, match="XDSNonIdenticalHash"):
        read_response(200, "application/soap+xml", answer, retry=True)
