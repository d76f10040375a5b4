"""The console's view of what a delivery carried (``eai.console._output.metadata_of``):
the destination type's own preview, reached through the registry, for an MSSanté
delivery (recipients and the XDM attachment's XDS metadata, built as a send builds
them), nothing for a destination whose payload is all it sends."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import connectors.mssante.destination  # noqa: F401 - registers the mssante destination
from connectors.mllp.destination import MllpDestinationConfig
from connectors.mssante.config import MssanteDestinationConfig
from eai import hl7
from eai.console._output import metadata_of
from eai.messages import MessageFacts, OutboxItem, Recipient
from tests._cisis import ORU

INS, INS_OID = "279035121518989", "1.2.250.1.213.1.4.10"


def _item(destination: str) -> OutboxItem:
    message = hl7.parse(ORU)
    recipients = tuple(
        Recipient(p.role, p.kind, p.address, p.identifier, p.identifier_system, p.identifier_type)
        for p in hl7.mss_participants(message)
    )
    facts = MessageFacts(hl7.meta_dmp_mss(message), recipients, INS, INS_OID)
    return OutboxItem(5, 9, destination, ORU, "015", "k", 1, facts=facts)


def _config(*destinations: Any) -> Any:
    return SimpleNamespace(destinations=list(destinations))


MSS = MssanteDestinationConfig.model_validate(
    {
        "name": "mss",
        "host": "127.0.0.1",
        "port": 25,
        "tls": {"ca": "/dev/null"},
        "sender": "labo-auto@labo.mssante.fr",
        "source_id": "1.2.250.1.999.1.1",
    }
)


def test_an_mssante_delivery_shows_its_recipients_and_xdm_metadata() -> None:
    shown = metadata_of(_config(MSS), _item("mss"))
    assert shown is not None and "dead" not in shown, shown
    assert shown["destination"] == "mss" and "IHE XDM" in shown["transaction"]
    assert shown["recipients"] == ["adam.hoda@test-ci-sis.mssante.fr", f"{INS}@patient.mssante.fr"]
    entry = shown["documentEntry"]
    assert entry["type_code"]["code"] == "11502-2" and entry["class_code"]["code"] == "10"
    assert entry["patient_id"] == f"{INS}^^^&{INS_OID}&ISO^NH"
    assert shown["submissionSet"]["source_id"] == "1.2.250.1.999.1.1"


def test_a_destination_without_a_preview_or_gone_from_the_config_shows_none() -> None:
    mllp = MllpDestinationConfig.model_validate({"name": "dcc", "host": "127.0.0.1", "port": 9})
    assert metadata_of(_config(mllp), _item("dcc")) is None
    assert metadata_of(_config(), _item("mss")) is None
