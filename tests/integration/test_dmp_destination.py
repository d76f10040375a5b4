"""The dmp destination against the stand-in repository over mutual TLS on 127.0.0.1:
the national CR-BIO ORU is published (MTOM, valid envelope and XDS.b request, ebRIM rules,
VIHF verified by xmlsec1); registry failures are dead letters with every error shown;
Receiver faults, HTTP 5xx and a repository down are retried. The stand-in's own checks
refuse a tampered document part, a tampered VIHF, a package without start-info and a
unique id published twice."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from connectors.dmp.config import DmpDestinationConfig
from connectors.dmp.destination import DmpDestination, load_signing_identity, prepare
from eai.errors import PermanentDeliveryError, TransientDeliveryError
from eai.messages import MessageFacts, OutboxItem
from eai.net import TlsClientConfig
from standins.dmp import Answer, DmpStandin
from tests._paths import HL7V2
from tests._pki import Pki, make_pki, make_seal

ORU = HL7V2 / "oru_r01_crbio_init.hl7"
INS = "279035121518989"
INS_OID = "1.2.250.1.213.1.4.10"


@dataclass
class Setup:
    pki: Pki
    standin: DmpStandin
    config: DmpDestinationConfig


def _write_seal(directory: Path) -> tuple[Path, Path, Path]:
    cert, key, ca = make_seal()
    paths = (directory / "seal.crt", directory / "seal.key", directory / "seal-ca.crt")
    paths[0].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    paths[2].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return paths


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    pki = make_pki(tmp_path / "pki")
    seal_cert, seal_key, seal_ca = _write_seal(tmp_path)
    standin = DmpStandin(pki.server_cert, pki.server_key, pki.ca, seal_ca).start()
    config = DmpDestinationConfig(
        name="dmp",
        url=standin.url,
        tls=TlsClientConfig(ca=pki.ca, cert=pki.client_cert, key=pki.client_key),
        sign_cert=seal_cert,
        sign_key=seal_key,
        source_id="1.2.250.1.999.1.1",
        structure_id="1120459876",
        activity_sector="SA25^1.2.250.1.71.4.2.4",
        homologation_id="HOMOL-TEST",
        connect_timeout=5.0,
        response_timeout=30.0,
    )
    try:
        yield Setup(pki, standin, config)
    finally:
        standin.stop()


def item(delivery_id: int = 1, payload: bytes | None = None) -> OutboxItem:
    return OutboxItem(
        delivery_id,
        1,
        "dmp",
        payload if payload is not None else ORU.read_bytes(),
        "015",
        "k",
        facts=MessageFacts(flags={"DESTDMP": "Y"}, ins=INS, ins_oid=INS_OID),
    )


def oru_document() -> bytes:
    text = ORU.read_bytes().decode("utf-8")
    obx = next(s for s in re.split(r"[\r\n]+", text) if s.startswith("OBX|1|ED|"))
    data = obx.split("|")[5].split("^")[4]
    return base64.b64decode(data + "=" * (-len(data) % 4))


async def _send(config: DmpDestinationConfig, it: OutboxItem) -> object:
    destination = DmpDestination(config)
    await destination.start()
    try:
        return await destination.send(it)
    finally:
        await destination.close()


def send(config: DmpDestinationConfig, it: OutboxItem | None = None) -> object:
    return asyncio.run(_send(config, it or item()))


def test_the_oru_fixture_is_published(setup: Setup) -> None:
    result = send(setup.config)
    assert [r.refused or r.signature or r.answered for r in setup.standin.received] == ["success"]
    published = setup.standin.published[0]
    assert published.errors == []
    assert oru_document() in published.documents.values()
    assert sorted(published.entry_ids) == sorted(published.documents)
    # the submission-set signature (IHE DSG), verified by xmlsec1 in the stand-in
    assert (
        len(published.signatures) == 1 and published.signatures[0] in published.documents.values()
    )
    assert published.patient_id == f"{INS}^^^&{INS_OID}&ISO^NH"
    assert "1.2.250.1.213.1.1.9" in published.unique_ids
    assert getattr(result, "detail", "") == "Success"
    assert b"ResponseStatusType:Success" in getattr(result, "response", b"")


def test_a_registry_failure_is_a_dead_letter_naming_every_error(setup: Setup) -> None:
    setup.standin.answer = Answer(
        "failure",
        [("XDSUnknownPatientId", "patient inconnu du DMP"), ("DMPClosed", "DMP ferme")],
    )
    with pytest.raises(PermanentDeliveryError) as caught:
        send(setup.config)
    reason = str(caught.value)
    assert "XDSUnknownPatientId (Error" in reason and "patient inconnu du DMP" in reason
    assert "DMPClosed (Error" in reason and "DMP ferme" in reason


@pytest.mark.parametrize(
    "answer", [Answer("receiver-fault"), Answer("http", status=503), Answer("http", status=502)]
)
def test_server_trouble_is_retried(setup: Setup, answer: Answer) -> None:
    setup.standin.answer = answer
    with pytest.raises(TransientDeliveryError):
        send(setup.config)


def test_a_sender_fault_is_a_dead_letter(setup: Setup) -> None:
    config = setup.config.model_copy(update={"url": setup.standin.url + "/other"})
    with pytest.raises(PermanentDeliveryError, match="Sender.*To"):
        send(config)


def test_a_repository_down_is_retried_then_published(setup: Setup) -> None:
    port = setup.standin.port
    setup.standin.stop()
    with pytest.raises(TransientDeliveryError, match="cannot reach"):
        send(setup.config)
    setup.standin.start(port)
    send(setup.config)
    assert len(setup.standin.published) == 1


def test_a_client_without_the_structure_certificate_is_refused_and_retried(
    setup: Setup,
) -> None:
    tls = TlsClientConfig(ca=setup.pki.ca, cert=setup.pki.rogue_cert, key=setup.pki.rogue_key)
    with pytest.raises(TransientDeliveryError):
        send(setup.config.model_copy(update={"tls": tls}))
    assert setup.standin.received == []


def _prepared(setup: Setup) -> tuple[str, bytes]:
    signer = load_signing_identity(setup.config.sign_cert, setup.config.sign_key)
    message = prepare(setup.config, signer, item())
    return message.content_type, message.body


def test_the_standin_refuses_a_tampered_document_part(setup: Setup) -> None:
    content_type, body = _prepared(setup)
    tampered = body.replace(b"<title>Compte rendu", b"<title>Compte_rendu", 1)
    assert tampered != body
    status, _, answer = setup.standin.handle(content_type, tampered)
    assert status == 200
    assert b"XDSNonIdenticalHash" in answer


def test_the_standin_refuses_a_tampered_vihf(setup: Setup) -> None:
    content_type, body = _prepared(setup)
    tampered = body.replace(b">urn:dmp<", b">urn:dmq<", 1)
    assert tampered != body
    status, _, answer = setup.standin.handle(content_type, tampered)
    assert status == 500
    assert b"VIHF signature not verified by xmlsec1" in answer


def test_the_standin_refuses_a_package_without_start_info(setup: Setup) -> None:
    content_type, body = _prepared(setup)
    status, _, answer = setup.standin.handle(
        content_type.replace('start-info="application/soap+xml"; ', ""), body
    )
    assert status == 500
    assert b"start-info" in answer


def test_the_standin_refuses_a_unique_id_published_twice(setup: Setup) -> None:
    send(setup.config)
    with pytest.raises(PermanentDeliveryError, match="XDSDuplicateUniqueIdInRegistry"):
        send(setup.config, item(2))


def test_the_standin_refuses_a_tampered_submission_set_signature(setup: Setup) -> None:
    content_type, body = _prepared(setup)
    tampered = body.replace(b"<xades:SigningTime>", b"<xades:SigningTime>1", 1)
    assert tampered != body
    status, _, answer = setup.standin.handle(content_type, tampered)
    assert status == 500
    assert b"submission-set signature not verified by xmlsec1" in answer
