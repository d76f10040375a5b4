"""The DMP's ZAM^Z01: a registry Failure's first error in ERR-5 (DMPERRORCODE), any other
failure's reason in ERR-8, Y when published, nothing when not asked or not routed back."""

from __future__ import annotations

import pytest

from connectors.dmp._response import RegistryFailure, read_response
from connectors.dmp._zam import business_ack
from eai.errors import PermanentDeliveryError, TransientDeliveryError
from eai.messages import MessageFacts, OutboxItem
from tests._paths import HL7V2

ORU = b"\r".join((HL7V2 / "oru_r01_crbio_init.hl7").read_bytes().splitlines())
SOAP = "http://www.w3.org/2003/05/soap-envelope"
RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
FAILURE = (
    f'<soap:Envelope xmlns:soap="{SOAP}"><soap:Body><rs:RegistryResponse xmlns:rs="{RS}" '
    'status="urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"><rs:RegistryErrorList>'
    '<rs:RegistryError errorCode="DMPClosed" codeContext="DMP fermé" severity="Error"/>'
    '<rs:RegistryError errorCode="XDSUnknownPatientId" codeContext="inconnu" severity="Error"/>'
    "</rs:RegistryErrorList></rs:RegistryResponse></soap:Body></soap:Envelope>"
).encode()


def _item(flags: dict[str, str] | None = None, return_to: str = "lab-return") -> OutboxItem:
    facts = MessageFacts(flags if flags is not None else {"ACK_RECEPTION": "Y"})
    return OutboxItem(1, 1, "dmp", ORU, "015", "k", 1, facts=facts, return_to=return_to)


def _segments(payload: bytes) -> list[list[str]]:
    return [s.split("|") for s in payload.decode("utf-8").split("\r") if s]


def test_a_registry_failure_carries_its_errors_and_its_first_is_the_zam_err5() -> None:
    with pytest.raises(RegistryFailure) as info:
        read_response(200, "application/soap+xml", FAILURE)
    assert info.value.errors == [("DMPClosed", "DMP fermé"), ("XDSUnknownPatientId", "inconnu")]
    (zam,) = business_ack(_item(), info.value)
    err = _segments(zam.payload)[-1]
    assert err[3:6] == [
        "207^Application internal error^messageErrorCondition",
        "E",
        "DMPClosed^DMP fermé^DMPERRORCODE",
    ]
    assert _segments(zam.payload)[2][5] == "N^^expandedYes-NoIndicator"


@pytest.mark.parametrize(
    "failure",
    [PermanentDeliveryError("DMP answered HTTP 400"), TransientDeliveryError("DMP down")],
)
def test_another_failure_gives_its_reason_in_err8(failure: Exception) -> None:
    assert isinstance(failure, (PermanentDeliveryError, TransientDeliveryError))
    (zam,) = business_ack(_item(), failure)
    err = _segments(zam.payload)[-1]
    assert err[5:9] == ["", "", "", str(failure)]


def test_published_is_y_and_nothing_is_sent_unasked_or_without_a_return() -> None:
    (zam,) = business_ack(_item())
    assert (zam.destination, zam.kind) == ("lab-return", "business_ack ZAM^Z01")
    assert [s[0] for s in _segments(zam.payload)] == ["MSH", "EVN", "OBX"]
    assert business_ack(_item({"ACK_RECEPTION": "N"})) == ()
    assert business_ack(_item(return_to="")) == ()
    broken = OutboxItem(
        1,
        1,
        "dmp",
        b"not hl7",
        "",
        "k",
        1,
        facts=MessageFacts({"ACK_RECEPTION": "Y"}),
        return_to="x",
    )
    assert business_ack(broken) == ()
