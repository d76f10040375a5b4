"""Read a repository's answer to ITI-41 into delivered, retry or dead letter.

Touches: nothing.

The body is SOAP 1.2, alone (``application/soap+xml``) or as the root part of an MTOM
``multipart/related`` (read with the standard library's MIME parser). Its Body holds an
ebRS 3.0 ``RegistryResponse`` (IHE ITI TF-2b §3.41.4.2) or a SOAP ``Fault``:

- ``...ResponseStatusType:Success`` or ``PartialSuccess``: delivered (the envelope kept);
- ``...:Failure``: dead letter, every RegistryError's ``errorCode``, ``codeContext`` and
  ``severity`` in the reason, except when every error says the registry or repository is
  busy or out of resources (``XDSRegistryBusy``...): then retried; and except, on a retry
  (``retry``), when the errors say the registry is already in the requested state
  (:data:`ALREADY_DONE`): an earlier attempt was applied but its answer was lost (a
  timeout, a dropped connection), so this one counts as delivered, said so in the detail.
  A publication: every error ``XDSDuplicateUniqueIdInRegistry`` (the same uniqueId with
  the same hash; another hash is ``XDSNonIdenticalHash``, a failure: IHE ITI TF-3
  §4.2.4.1). A deletion: every error ``XDSMetadataUpdateError`` naming the entry's
  current status ``Deleted`` (its OriginalStatus ``Approved`` no longer holds: IHE
  defines no code of its own for it). On a first attempt the same answers are failures;
- a Fault whose Code is ``soap:Receiver``: retried (the server's trouble); any other Fault
  (``soap:Sender``...): dead letter, with its reason;
- no readable SOAP: HTTP 5xx, 408 and 429 are retried, any other status is a dead letter.
"""

from __future__ import annotations

from collections.abc import Callable
from email import policy
from email.parser import BytesParser

from lxml import etree

from connectors.dmp._soap import SOAP12
from eai.errors import InputError, PermanentDeliveryError, TransientDeliveryError
from eai.messages import DeliveryResult
from eai.xml import parse_xml

__all__ = ["ALREADY_DONE", "RS", "RegistryFailure", "read_response"]

RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
_STATUS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:"
_BUSY = frozenset(
    {
        "XDSRegistryBusy",
        "XDSRepositoryBusy",
        "XDSRegistryOutOfResources",
        "XDSRepositoryOutOfResources",
    }
)
_MAX_TEXT = 300
_DELETED = "urn:asip:ci-sis:2010:StatusType:Deleted"


def _already_published(errors: list[tuple[str, str]]) -> bool:
    return bool(errors) and all(code == "XDSDuplicateUniqueIdInRegistry" for code, _ in errors)


def _already_deleted(errors: list[tuple[str, str]]) -> bool:
    return bool(errors) and all(
        code == "XDSMetadataUpdateError" and _DELETED in context for code, context in errors
    )


ALREADY_DONE: dict[str, tuple[Callable[[list[tuple[str, str]]], bool], str]] = {
    "publish": (_already_published, "already published by an earlier attempt"),
    "delete": (_already_deleted, "already deleted by an earlier attempt"),
}
"""Per action: (do these (errorCode, codeContext) say the registry is already in the
requested state?, the delivery's detail then). Read on a retry only."""


class RegistryFailure(PermanentDeliveryError):
    """A ``Failure`` RegistryResponse; ``errors``: each RegistryError's (``errorCode``,
    ``codeContext``), for the ZAM^Z01 sent back to the establishment."""

    def __init__(self, message: str, errors: list[tuple[str, str]]) -> None:
        super().__init__(message)
        self.errors = errors


def _root_part(content_type: str, body: bytes) -> bytes:
    if not content_type.lower().startswith("multipart/"):
        return body
    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    start = message.get_param("start", header="content-type")
    parts = list(message.iter_parts())
    if not parts:
        return b""
    chosen = parts[0]
    if isinstance(start, str):
        chosen = next((p for p in parts if p.get("Content-ID", "").strip() == start), chosen)
    payload = chosen.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


def _registry_response(
    response: etree._Element, envelope: bytes, retry: bool, action: str
) -> DeliveryResult:
    status = str(response.get("status", ""))
    errors = response.findall(f"{{{RS}}}RegistryErrorList/{{{RS}}}RegistryError")
    described = [
        "{} ({}{}): {}".format(
            e.get("errorCode", "?"),
            e.get("severity", "").rsplit(":", 1)[-1] or "Error",
            f", at {e.get('location')}" if e.get("location") else "",
            _short(e.get("codeContext", "") or (e.text or "")),
        )
        for e in errors
    ]
    if status in (f"{_STATUS}Success", f"{_STATUS}PartialSuccess"):
        detail = status.rsplit(":", 1)[-1]
        if described:
            detail += ": " + "; ".join(described)
        return DeliveryResult(detail=detail, response=envelope)
    if status == f"{_STATUS}Failure":
        pairs = [(str(e.get("errorCode", "")), str(e.get("codeContext", ""))) for e in errors]
        codes = {code for code, _ in pairs}
        summary = "; ".join(described) or "no RegistryError given"
        if codes and codes <= _BUSY:
            raise TransientDeliveryError(f"DMP registry busy: {summary}")
        done, said = ALREADY_DONE.get(action, ALREADY_DONE["publish"])
        if retry and done(pairs):
            return DeliveryResult(detail=f"{said}: {summary}", response=envelope)
        raise RegistryFailure(
            f"DMP registry refused the document: {summary}",
            [(code, _short(context)) for code, context in pairs],
        )
    raise PermanentDeliveryError(f"DMP answered an unknown RegistryResponse status {status!r}")


def _fault(fault: etree._Element) -> DeliveryResult:
    code = fault.findtext(f"{{{SOAP12}}}Code/{{{SOAP12}}}Value", default="").strip()
    subcode = fault.findtext(
        f"{{{SOAP12}}}Code/{{{SOAP12}}}Subcode/{{{SOAP12}}}Value", default=""
    ).strip()
    reason = _short(fault.findtext(f"{{{SOAP12}}}Reason/{{{SOAP12}}}Text", default=""))
    said = f"SOAP fault {code}{f' ({subcode})' if subcode else ''}: {reason or 'no reason'}"
    if code.rsplit(":", 1)[-1] == "Receiver":
        raise TransientDeliveryError(f"DMP {said}")
    raise PermanentDeliveryError(f"DMP {said}")


def _status_only(status: int) -> DeliveryResult:
    if status >= 500 or status in (408, 429):
        raise TransientDeliveryError(f"DMP answered HTTP {status} without a SOAP response")
    raise PermanentDeliveryError(f"DMP answered HTTP {status} without a SOAP response")


def read_response(
    status: int, content_type: str, body: bytes, *, retry: bool = False, action: str = "publish"
) -> DeliveryResult:
    """The outcome of one ITI-41 (or ITI-57) exchange: a DeliveryResult, or the delivery
    error to raise; ``retry``: this attempt is not the delivery's first; ``action``:
    ``publish`` or ``delete`` (:data:`ALREADY_DONE`)."""
    envelope = _root_part(content_type, body)
    try:
        root = parse_xml(envelope) if envelope.strip() else None
    except InputError:
        root = None
    if root is None or root.tag != f"{{{SOAP12}}}Envelope":
        return _status_only(status)
    payload = root.find(f"{{{SOAP12}}}Body/*")
    if payload is None:
        return _status_only(status)
    if payload.tag == f"{{{SOAP12}}}Fault":
        return _fault(payload)
    if payload.tag == f"{{{RS}}}RegistryResponse":
        # Whatever the HTTP status, a RegistryResponse says more than the status code.
        return _registry_response(payload, envelope, retry, action)
    return _status_only(status) if status >= 300 else _unexpected(payload)


def _unexpected(payload: etree._Element) -> DeliveryResult:
    raise PermanentDeliveryError(
        f"DMP answered {etree.QName(payload).localname}, not a RegistryResponse"
    )
