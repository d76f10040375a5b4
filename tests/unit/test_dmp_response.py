"""Reading a repository's ITI-41 answer: Success delivered, Failure a dead letter naming
every error (busy registries retried; on a retry, the registry already in the requested
state: delivered), Receiver faults and 5xx retried, MTOM answers read."""

from __future__ import annotations

import pytest

from connectors.dmp._response import read_response
from eai.errors import PermanentDeliveryError, TransientDeliveryError

SOAP = "http://www.w3.org/2003/05/soap-envelope"
RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
STATUS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:"
ERROR = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"
XML = "application/soap+xml; charset=UTF-8"


def envelope(body: str) -> bytes:
    return (
        f'<soap:Envelope xmlns:soap="{SOAP}"><soap:Body>{body}</soap:Body></soap:Envelope>'.encode()
    )


def registry(status: str, *errors: tuple[str, str]) -> bytes:
    items = "".join(
        f'<rs:RegistryError errorCode="{c}" codeContext="{x}" severity="{ERROR}"/>'
        for c, x in errors
    )
    listing = f"<rs:RegistryErrorList>{items}</rs:RegistryErrorList>" if errors else ""
    return envelope(
        f'<rs:RegistryResponse xmlns:rs="{RS}" status="{STATUS}{status}">{listing}'
        "</rs:RegistryResponse>"
    )


def fault(code: str) -> bytes:
    return envelope(
        f"<soap:Fault><soap:Code><soap:Value>soap:{code}</soap:Value></soap:Code>"
        "<soap:Reason><soap:Text>why</soap:Text></soap:Reason></soap:Fault>"
    )


def test_success_is_delivered_with_the_response_kept() -> None:
    body = registry("Success")
    result = read_response(200, XML, body)
    assert result.detail == "Success"
    assert result.response == body


def test_a_failure_names_every_error_code_context_and_severity() -> None:
    body = registry("Failure", ("XDSUnknownPatientId", "patient inconnu"), ("DMPClosed", "ferme"))
    with pytest.raises(PermanentDeliveryError) as caught:
        read_response(200, XML, body)
    reason = str(caught.value)
    assert "XDSUnknownPatientId (Error): patient inconnu" in reason
    assert "DMPClosed (Error): ferme" in reason


def test_a_busy_registry_is_retried() -> None:
    with pytest.raises(TransientDeliveryError, match="XDSRegistryBusy"):
        read_response(200, XML, registry("Failure", ("XDSRegistryBusy", "later")))


@pytest.mark.parametrize(
    ("code", "error"), [("Receiver", TransientDeliveryError), ("Sender", PermanentDeliveryError)]
)
def test_faults(code: str, error: type[Exception]) -> None:
    with pytest.raises(error, match=f"soap:{code}: why"):
        read_response(500, XML, fault(code))


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (503, TransientDeliveryError),
        (500, TransientDeliveryError),
        (429, TransientDeliveryError),
        (404, PermanentDeliveryError),
        (200, PermanentDeliveryError),
    ],
)
def test_no_soap_answer_goes_by_the_status(status: int, error: type[Exception]) -> None:
    with pytest.raises(error, match=f"HTTP {status}"):
        read_response(status, "text/html", b"<html>busy</html>")


def test_an_mtom_answer_is_read_from_its_root_part() -> None:
    boundary = "uuid:0b1c"
    body = (
        (
            f"--{boundary}\r\nContent-Type: application/xop+xml; charset=UTF-8; "
            'type="application/soap+xml"\r\nContent-Transfer-Encoding: binary\r\n'
            "Content-ID: <root@x>\r\n\r\n"
        ).encode()
        + registry("Success")
        + f"\r\n--{boundary}--\r\n".encode()
    )
    content_type = (
        f'multipart/related; boundary="{boundary}"; type="application/xop+xml"; '
        'start="<root@x>"; start-info="application/soap+xml"'
    )
    assert read_response(200, content_type, body).detail == "Success"


def test_a_duplicate_unique_id_on_a_retry_is_an_earlier_publication() -> None:
    body = registry("Failure", ("XDSDuplicateUniqueIdInRegistry", "1.2.3 already registered"))
    with pytest.raises(PermanentDeliveryError, match="XDSDuplicateUniqueIdInRegistry"):
        read_response(200, XML, body)
    assert read_response(200, XML, body, retry=True).detail.startswith("already published")


def test_a_deletion_retry_finding_the_entry_deleted_is_an_earlier_deletion() -> None:
    deleted = "urn:asip:ci-sis:2010:StatusType:Deleted"
    approved = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
    body = registry("Failure", ("XDSMetadataUpdateError", f"OriginalStatus is not {deleted}"))
    with pytest.raises(PermanentDeliveryError, match="XDSMetadataUpdateError"):
        read_response(200, XML, body, action="delete")  # a first attempt
    result = read_response(200, XML, body, retry=True, action="delete")
    assert result.detail.startswith("already deleted by an earlier attempt: ")
    with pytest.raises(PermanentDeliveryError):  # a publication never reads it so
        read_response(200, XML, body, retry=True)
    other = registry("Failure", ("XDSMetadataUpdateError", f"status is {approved}"))
    with pytest.raises(PermanentDeliveryError):
        read_response(200, XML, other, retry=True, action="delete")
    mixed = registry(
        "Failure",
        ("XDSMetadataUpdateError", f"is {deleted}"),
        ("XDSPatientIdDoesNotMatch", "another patient"),
    )
    with pytest.raises(PermanentDeliveryError, match="XDSPatientIdDoesNotMatch"):
        read_response(200, XML, mixed, retry=True, action="delete")
    duplicate = registry("Failure", ("XDSDuplicateUniqueIdInRegistry", "1.2.3"))
    with pytest.raises(PermanentDeliveryError):  # a deletion is no publication
        read_response(200, XML, duplicate, retry=True, action="delete")
