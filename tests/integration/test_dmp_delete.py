"""The DMP deletion (TD3.3c: ITI-57 Update Document Set, availabilityStatus -> Deleted)
against the stand-in registry over mutual TLS: a deletion of a published document marks its
entry deleted; sent right behind its publication, it never overtakes it (per-patient order);
a deletion of a document the DMP does not know is dead with the registry's error shown; a
destination without registry_url dead-letters a deletion naming the setting; the stand-in
refuses an ITI-57 that breaks the published rules (ebRS schema, OriginalStatus, action)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from connectors.dmp.config import DmpDestinationConfig
from connectors.dmp.destination import DmpDestination, load_signing_identity, prepare_request
from eai.cli import cli
from eai.errors import PermanentDeliveryError
from eai.messages import MessageFacts, OutboxItem
from eai.net import TlsClientConfig
from standins.dmp import DmpStandin
from tests._crbio import crbio_oru
from tests._mllp import MllpSender, msa
from tests._national import DmpPeer, dmp_standin
from tests._pki import Pki
from tests.engine_harness import EngineThread

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

INS, INS_OID = "279035121518989", "1.2.250.1.213.1.4.10"
PATIENT = f"{INS}^^^&{INS_OID}&ISO^NH"
ENTRY = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_OID, '1.2.250.1.213.1.1.9')}"
DELETED = "urn:asip:ci-sis:2010:StatusType:Deleted"


@dataclass
class Dmp:
    pki: Pki
    standin: DmpStandin
    seal_cert: Path
    seal_key: Path
    peer: DmpPeer

    def config(self, **changes: Any) -> DmpDestinationConfig:
        fields: dict[str, Any] = {
            "name": "dmp",
            "url": self.standin.url,
            "registry_url": self.standin.registry_url,
            "tls": TlsClientConfig(
                ca=self.pki.ca, cert=self.pki.client_cert, key=self.pki.client_key
            ),
            "sign_cert": self.seal_cert,
            "sign_key": self.seal_key,
            "source_id": "1.2.250.1.999.1.1",
            "structure_id": "1120459876",
            "activity_sector": "SA25^1.2.250.1.71.4.2.4",
            "homologation_id": "HOMOL-TEST",
            "connect_timeout": 5.0,
            "response_timeout": 30.0,
        }
        fields.update(changes)
        return DmpDestinationConfig(**fields)


@pytest.fixture
def dmp(tmp_path: Path) -> Iterator[Dmp]:
    with dmp_standin(tmp_path) as peer:
        yield Dmp(peer.pki, peer.standin, peer.seal.cert, peer.seal.key, peer)


def item(delivery_id: int, action: str) -> OutboxItem:
    flags = {"DESTDMP": "Y", "document_action": action}
    return OutboxItem(
        delivery_id,
        delivery_id,
        "dmp",
        crbio_oru(f"DEL-{delivery_id}", delete=action == "delete"),
        f"DEL-{delivery_id}",
        "k",
        facts=MessageFacts(flags=flags, ins=INS, ins_oid=INS_OID),
    )


async def _send(config: DmpDestinationConfig, items: list[OutboxItem]) -> None:
    destination = DmpDestination(config)
    await destination.start()
    try:
        for it in items:
            await destination.send(it)
    finally:
        await destination.close()


def send(config: DmpDestinationConfig, *items: OutboxItem) -> None:
    asyncio.run(_send(config, list(items)))


def test_a_published_document_is_deleted_by_an_iti57(dmp: Dmp) -> None:
    send(dmp.config(), item(1, "new"), item(2, "delete"))
    assert [(r.transaction, r.answered) for r in dmp.standin.received] == [
        ("ITI-41", "success"),
        ("ITI-57", "success"),
    ]
    (update,) = dmp.standin.updated
    assert update.updates == [(ENTRY, DELETED)]
    assert update.patient_id == PATIENT
    assert update.documents == {}  # no document travels with a deletion
    assert dmp.standin.entries[ENTRY] == (PATIENT, DELETED)
    assert b"ProvideAndRegisterDocumentSetRequest" not in update.envelope


def test_deleting_a_document_the_dmp_does_not_know_is_dead_with_its_error(dmp: Dmp) -> None:
    with pytest.raises(PermanentDeliveryError, match="UnresolvedReferenceException.*registered"):
        send(dmp.config(), item(1, "delete"))
    assert dmp.standin.updated == []


def test_a_deletion_without_a_registry_endpoint_is_dead_naming_it(dmp: Dmp) -> None:
    with pytest.raises(PermanentDeliveryError, match="registry_url"):
        send(dmp.config(registry_url=None), item(1, "delete"))
    assert dmp.standin.received == []


def _deletion(dmp: Dmp) -> tuple[str, str, bytes]:
    config = dmp.config()
    signer = load_signing_identity(config.sign_cert, config.sign_key)
    url, message = prepare_request(config, signer, item(2, "delete"))
    return url, message.content_type, message.body


def test_the_registry_standin_checks_the_status_change(dmp: Dmp) -> None:
    send(dmp.config(), item(1, "new"))
    url, content_type, body = _deletion(dmp)
    assert url == dmp.standin.registry_url
    assert content_type.startswith("application/soap+xml")
    assert 'action="urn:ihe:iti:2010:UpdateDocumentSet"' in content_type
    no_original = body.replace(b'name="OriginalStatus"', b'name="Original"', 1)
    assert no_original != body
    status, _, answer = dmp.standin.handle_update(content_type, no_original)
    assert status == 200 and b"XDSMetadataUpdateError" in answer
    assert b"one OriginalStatus and one NewStatus" in answer
    unknown = body.replace(b"StatusType:Deleted", b"StatusType:Gone", 1)
    _, _, answer = dmp.standin.handle_update(content_type, unknown)
    assert b"XDSMetadataUpdateError" in answer and b"no availability status" in answer
    status, _, answer = dmp.standin.handle_update(
        content_type.replace("UpdateDocumentSet", "ProvideAndRegisterDocumentSet-b"), body
    )
    assert status == 500 and b"action" in answer
    assert dmp.standin.entries[ENTRY] == (
        PATIENT,
        "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved",
    )
    status, _, answer = dmp.standin.handle_update(content_type, body)
    assert (status, b"ResponseStatusType:Success" in answer) == (200, True)
    _, _, again = dmp.standin.handle_update(content_type, _deletion(dmp)[2])
    assert b"XDSMetadataUpdateError" in again  # already deleted: OriginalStatus is wrong


def _routes(tmp: Path, dmp: Dmp) -> Path:
    return dmp.peer.routes(
        tmp,
        connect_timeout="2s",
        retry={"initial": "0.1s", "max": "0.3s", "jitter": 0},
    )


def _deliveries(config: Path) -> list[dict[str, Any]]:
    result = CliRunner().invoke(cli, ["messages", "list", "-c", str(config), "--json"])
    assert result.exit_code == 0, result.output
    return [d for m in json.loads(result.output) for d in m["deliveries"]]


def _wait(condition: Callable[[], bool], what: str, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_deletion_never_overtakes_its_publication(dmp: Dmp, tmp_path: Path) -> None:
    """The ORU and its deletion sent back to back over MLLP, the stand-in answering each
    request late: the ITI-57 reaches the registry after the ITI-41's Success (the registry
    would refuse a deletion of an entry it does not know)."""
    dmp.standin.delay = 0.5
    config = _routes(tmp_path, dmp)
    with EngineThread(config) as eng:
        for control_id, delete in (("DEL-E2E-1", False), ("DEL-E2E-2", True)):
            with MllpSender(eng.port("lab")) as sender:
                code, _ = msa(sender.exchange(crbio_oru(control_id, delete=delete)))
                assert code == "AA", control_id
        _wait(
            lambda: (
                len(rows := _deliveries(config)) == 2
                and all(d["status"] == "delivered" for d in rows)
            ),
            "the publication and the deletion",
        )
    assert [(r.transaction, r.answered) for r in dmp.standin.received] == [
        ("ITI-41", "success"),
        ("ITI-57", "success"),
    ]
    assert dmp.standin.entries[ENTRY] == (PATIENT, DELETED)
