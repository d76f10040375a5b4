"""What one MSSanté mail is made of, read from an outbox item (ORU/MDM or CDA alone).

Touches: nothing.

The document and its XDS metadata come from :func:`eai.xds.read_publication`; the message
adds (IG ``ansforge/IG-hl7v2-volet-transmission-document-cda-r2``, ``mapping-mss.md``,
``meta-dmp-mss.md``) the mail bodies ``CORPSMAIL_PS`` / ``CORPSMAIL_PATIENT`` (MetaDMPMSS
OBX of type ED, OBX-5.5 in base64 when OBX-5.4 says so, plain UTF-8 text) and the
"no reply" request of the patient mail (an NTE whose NTE-4 is ``FIN``: ``X-MSS-MES:
FIN``, docs-fr.md "MSSanté"). A level-1 CDA (``nonXMLBody``) carrying a PDF gives that PDF,
attached to the mail beside the zip as the MSSanté mail IG shows (``struct-email-standard.md``).
Everything read is patient data: never logged.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from eai.cda import NAMESPACES, find_clinical_document
from eai.errors import InputError, PermanentDeliveryError
from eai.hl7 import Hl7Message, decode_base64, parse
from eai.messages import MEDIA_HL7V2, OutboxItem
from eai.xds import Publication, read_publication
from eai.xml import parse_xml

__all__ = ["MailSource", "mail_source"]

_META = "MetaDMPMSS"


@dataclass(frozen=True, slots=True, repr=False)
class MailSource:
    """The document, its metadata, and the message's part of the mail (patient data)."""

    publication: Publication
    body_ps: str = ""
    body_patient: str = ""
    no_reply: bool = False
    pdf: bytes = b""


def _body(message: Hl7Message, code: str) -> str:
    for segment in message.segments():
        if segment.name != "OBX" or segment.get(3, 1, 3) != _META or segment.get(3, 1, 1) != code:
            continue
        data = segment.get(5, 1, 5)
        if segment.get(5, 1, 4).lower() == "base64":
            return _decoded(data).decode("utf-8", errors="replace").strip()
        return data.strip()
    return ""


def _decoded(data: str) -> bytes:
    """The body's bytes; a body cut short (the national ORU example's ends mid-quantum) gives
    its whole quanta, a body that is no base64 at all nothing (the default text is used)."""
    try:
        return decode_base64(data)[0]
    except (InputError, ValueError):
        pass
    compact = "".join(data.split())
    try:
        return base64.b64decode(compact[: len(compact) - len(compact) % 4], validate=True)
    except (binascii.Error, ValueError):
        return b""


def _no_reply(message: Hl7Message) -> bool:
    return any(s.name == "NTE" and s.get(4, 1, 1).upper() == "FIN" for s in message.segments())


def _pdf(publication: Publication) -> bytes:
    if publication.header.structured:
        return b""
    try:
        document = find_clinical_document(parse_xml(publication.document))
    except InputError:
        return b""
    texts = document.xpath(
        "./hl7:component/hl7:nonXMLBody/hl7:text[@mediaType='application/pdf']",
        namespaces=NAMESPACES,
    )
    if not isinstance(texts, list) or not texts:
        return b""
    text = texts[0]
    content = "".join(text.itertext()) if hasattr(text, "itertext") else ""
    try:
        return base64.b64decode("".join(content.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PermanentDeliveryError("the level-1 CDA's PDF is not base64") from exc


def mail_source(item: OutboxItem) -> MailSource:
    """Read ``item`` (raises PermanentDeliveryError as :func:`eai.xds.read_publication`)."""
    message = None
    if item.media_type == MEDIA_HL7V2:
        try:
            message = parse(item.payload)
        except (InputError, ValueError) as exc:
            raise PermanentDeliveryError(f"the HL7 v2 message is not readable: {exc}") from exc
    publication = read_publication(item, message)
    pdf = _pdf(publication)
    if message is None:
        return MailSource(publication, pdf=pdf)
    return MailSource(
        publication,
        _body(message, "CORPSMAIL_PS"),
        _body(message, "CORPSMAIL_PATIENT"),
        _no_reply(message),
        pdf,
    )
