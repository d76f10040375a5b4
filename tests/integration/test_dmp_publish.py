"""The dmp destination end to end: the national CR-BIO ORU over MLLP -> eai -> the stand-in
DMP repository (mutual TLS, schemas, ebRIM rules, VIHF verified by xmlsec1): published once;
a registry failure is dead with every error in ``eai messages show``; the DMP down for a
while gives retries, then one publication; a replacement sent right after its original
follows it, with an RPLC association to the original's entry; a non-qualified identity
is held, never sent; the national MDM^T02 carrying the CR-IMG fixture is published with
its confidentiality flags; a Success lost to a timeout, then a duplicate refusal of the
retry, counts as the one publication."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from lxml import etree

from eai.cli import cli
from standins.dmp import Answer, DmpStandin
from tests._cisis import mdm_with
from tests._crbio import crbio_oru
from tests._mllp import MllpSender, msa
from tests._national import DmpPeer, dmp_standin
from tests._paths import CDA
from tests._pki import Pki
from tests.engine_harness import EngineThread

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _replacement(control_id: str) -> bytes:
    """The fixture ORU as a replacement (ORC-1 RO, OBX-11 C) carrying version 2 of the CDA
    (another id, relatedDocument RPLC of the first)."""
    segments = crbio_oru(control_id).split(b"\r")
    for i, segment in enumerate(segments):
        fields = segment.split(b"|")
        if segment.startswith(b"ORC|"):
            fields[1] = b"RO"
        elif segment.startswith(b"OBX|1|ED|"):
            parts = fields[5].split(b"^")
            cda = base64.b64decode(parts[4] + b"=" * (-len(parts[4]) % 4))
            cda = cda.replace(
                b'<id root="1.2.250.1.213.1.1.9"/>', b'<id root="1.2.250.1.213.1.1.9.2"/>', 1
            )
            cda = cda.replace(b'<versionNumber value="1" />', b'<versionNumber value="2" />', 1)
            cda = cda.replace(
                b"<componentOf>",
                b'<relatedDocument typeCode="RPLC"><parentDocument>'
                b'<id root="1.2.250.1.213.1.1.9"/></parentDocument></relatedDocument>'
                b"<componentOf>",
                1,
            )
            parts[4] = base64.b64encode(cda)
            fields[5] = b"^".join(parts)
            fields[11] = b"C"
        segments[i] = b"|".join(fields)
    return b"\r".join(segments)


@dataclass
class Dmp:
    pki: Pki
    standin: DmpStandin
    seal_cert: Path
    seal_key: Path
    peer: DmpPeer


@pytest.fixture
def dmp(tmp_path: Path) -> Iterator[Dmp]:
    with dmp_standin(tmp_path) as peer:
        yield Dmp(peer.pki, peer.standin, peer.seal.cert, peer.seal.key, peer)


def _routes(tmp: Path, dmp: Dmp, response_timeout: str = "20s") -> Path:
    return dmp.peer.routes(
        tmp,
        registry_url=None,
        connect_timeout="2s",
        response_timeout=response_timeout,
        retry={"initial": "0.1s", "max": "0.3s", "jitter": 0},
    )


def _messages(config: Path) -> list[dict[str, Any]]:
    result = CliRunner().invoke(cli, ["messages", "list", "-c", str(config), "--json"])
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.output)
    return rows


def _deliveries(config: Path) -> list[dict[str, Any]]:
    return [d for m in _messages(config) for d in m["deliveries"]]


def _show(config: Path, message_id: int) -> str:
    result = CliRunner().invoke(cli, ["messages", "show", "-c", str(config), str(message_id)])
    assert result.exit_code == 0, result.output
    return result.output


def _wait(condition: Callable[[], bool], what: str, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _settled(config: Path, status: str) -> Callable[[], bool]:
    def check() -> bool:
        rows = _deliveries(config)
        return len(rows) == 1 and rows[0]["status"] == status

    return check


def _send(port: int, control_id: str, payload: bytes | None = None) -> None:
    with MllpSender(port) as sender:
        code, _ = msa(sender.exchange(payload or crbio_oru(control_id)))
        assert code == "AA", f"{control_id}: {code}"


def test_the_oru_is_published_once(dmp: Dmp, tmp_path: Path) -> None:
    config = _routes(tmp_path, dmp)
    with EngineThread(config) as eng:
        _send(eng.port("lab"), "ORU-DMP-1")
        _wait(_settled(config, "delivered"), "the publication")
    received = dmp.standin.received
    assert [(r.refused, r.signature, r.answered) for r in received] == [("", "", "success")]
    published = dmp.standin.published[0]
    assert published.errors == []
    assert published.patient_id == "279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH"


def test_a_registry_failure_is_dead_with_its_errors_shown(dmp: Dmp, tmp_path: Path) -> None:
    dmp.standin.answer = Answer(
        "failure", [("XDSUnknownPatientId", "patient-inconnu-4471"), ("DMPClosed", "ferme-0032")]
    )
    config = _routes(tmp_path, dmp)
    with EngineThread(config) as eng:
        _send(eng.port("lab"), "ORU-DMP-2")
        _wait(_settled(config, "dead"), "the dead letter")
    assert len(dmp.standin.received) == 1
    shown = _show(config, _messages(config)[0]["id"])
    for text in ("XDSUnknownPatientId", "patient-inconnu-4471", "DMPClosed", "ferme-0032"):
        assert text in shown


def test_a_dmp_down_for_a_while_gives_retries_then_one_publication(
    dmp: Dmp, tmp_path: Path
) -> None:
    dmp.standin.answer = Answer("http", status=503, times=3)
    port = dmp.standin.port
    dmp.standin.stop()
    config = _routes(tmp_path, dmp)
    with EngineThread(config) as eng:
        _send(eng.port("lab"), "ORU-DMP-3")
        _wait(lambda: any(d["attempts"] >= 2 for d in _deliveries(config)), "retries while down")
        dmp.standin.start(port)
        _wait(_settled(config, "delivered"), "the publication")
    answered = [r.answered for r in dmp.standin.received]
    assert answered == ["http", "http", "http", "success"]
    assert len(dmp.standin.published) == 1


def test_a_replacement_follows_its_original_with_rplc(dmp: Dmp, tmp_path: Path) -> None:
    """Sent back to back, the replacement never overtakes the original (per-patient order):
    the stand-in answers each request late and refuses an RPLC to an unknown entry."""
    dmp.standin.delay = 0.5
    config = _routes(tmp_path, dmp)
    with EngineThread(config) as eng:
        _send(eng.port("lab"), "ORU-DMP-4")
        _send(eng.port("lab"), "ORU-DMP-5", _replacement("ORU-DMP-5"))
        _wait(
            lambda: (
                len(rows := _deliveries(config)) == 2
                and all(d["status"] == "delivered" for d in rows)
            ),
            "both publications",
        )
    original, replacement = dmp.standin.published
    first = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_OID, '1.2.250.1.213.1.1.9')}"
    assert original.entry_ids[0] == first and original.replaced == []
    assert replacement.replaced == [first]
    assert "1.2.250.1.213.1.1.9.2" in replacement.unique_ids


def test_a_non_qualified_identity_is_held_never_sent(dmp: Dmp, tmp_path: Path) -> None:
    """PID-32 PROV (provisional): the delivery is held (require_qualified_identity is on by
    default for dmp), nothing reaches the DMP."""
    payload = b"\r".join(
        segment.replace(b"|N|VALI", b"|N|PROV") if segment.startswith(b"PID|") else segment
        for segment in crbio_oru("ORU-DMP-6").split(b"\r")
    )
    assert b"|N|PROV" in payload
    config = _routes(tmp_path, dmp)
    with EngineThread(config) as eng:
        _send(eng.port("lab"), "ORU-DMP-6", payload)
        _wait(_settled(config, "held"), "the held delivery")
        time.sleep(1.0)  # the retry policy is 0.1 s: a send would have happened by now
    assert dmp.standin.received == []


def test_the_mdm_with_an_imaging_report_is_published_with_its_flags(
    dmp: Dmp, tmp_path: Path
) -> None:
    """The national MDM^T02 carrying the CR-IMG fixture, INVISIBLE_PATIENT,
    INVISIBLE_REP_LEGAUX and CONNEXION_SECRETE at Y: classCode 31, the two extra
    confidentiality codes, the VIHF's confidentiality attribute."""
    config = _routes(tmp_path, dmp)
    with EngineThread(config) as eng:
        _send(eng.port("lab"), "015", mdm_with((CDA / "IMG_CR_IMG_2024.01.xml").read_bytes()))
        _wait(_settled(config, "delivered"), "the publication")
    (published,) = dmp.standin.published
    envelope = etree.fromstring(published.envelope)
    ns = {"rim": "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"}
    codes = envelope.xpath(
        "//rim:ExtrinsicObject/rim:Classification/@nodeRepresentation", namespaces=ns
    )
    assert {"31", "N", "INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX", "18748-4"} <= set(
        codes
    )
    assert "MASQUE_PS" not in codes
    assert b"urn:ihe:rad:CDA:ImagingReportStructuredHeadings:2013" in published.envelope
    assert (
        b'Name="urn:oasis:names:tc:xspa:1.0:resource:patient:hl7:confidentiality-code"'
        in published.envelope
    )


def test_a_lost_success_then_a_duplicate_counts_as_the_publication(
    dmp: Dmp, tmp_path: Path
) -> None:
    """The DMP publishes but answers after the response timeout: the retry is refused as a
    duplicate uniqueId, which on a retry means the earlier attempt was published."""
    dmp.standin.delay = 2.0
    config = _routes(tmp_path, dmp, response_timeout="1s")
    with EngineThread(config) as eng:
        _send(eng.port("lab"), "ORU-DMP-7")
        _wait(lambda: len(dmp.standin.published) == 1, "the (late) publication")
        dmp.standin.delay = 0.0
        _wait(_settled(config, "delivered"), "the delivery")
    (row,) = _deliveries(config)
    assert row["attempts"] >= 2
    assert len(dmp.standin.published) == 1
    assert "XDSDuplicateUniqueIdInRegistry" in {
        code for r in dmp.standin.received if r.checked for code, _ in r.checked.errors
    }
