"""The ITI-41 HTTP request body: a SOAP 1.2 envelope with WS-Addressing and the VIHF,
packaged as MTOM/XOP (multipart/related), the documents in their own parts.

Touches: nothing.

Built by hand with lxml and bytes (zeep cannot send MTOM), as the ANS sample
``ansforge/DRIM-M_DATA`` ``informatif/XDS/publication.xml`` and W3C XOP/MTOM (SOAP 1.2
MTOM §3, XOP 1.0 §4) lay it out: the HTTP Content-Type ``multipart/related;
type="application/xop+xml"; start="<root>"; start-info="application/soap+xml";
action="urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"``; the root part
``application/xop+xml; charset=UTF-8; type="application/soap+xml"`` holding the envelope
(the WS-Security header and its signed assertion stay inline: only the ``xdsb:Document``
contents are optimised); each document as ``Content-Transfer-Encoding: binary`` bytes
referenced by ``<xop:Include href="cid:..."/>``. WS-Addressing 1.0: ``wsa:Action`` with
``soap:mustUnderstand="true"``, ``wsa:MessageID`` an ``urn:uuid``, ``wsa:To`` the
repository's URL.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from lxml import etree

from eai.xds import XDSB
from eai.xml import parse_xml

__all__ = [
    "ACTION",
    "SOAP12",
    "UPDATE_ACTION",
    "WSA",
    "WSSE",
    "XOP",
    "MtomMessage",
    "mtom_message",
    "soap_message",
]

ACTION = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
UPDATE_ACTION = "urn:ihe:iti:2010:UpdateDocumentSet"
"""ITI-57 Update Document Set (IHE XDS Metadata Update; IPF's ``iti57.wsdl``)."""
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://www.w3.org/2005/08/addressing"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
XOP = "http://www.w3.org/2004/08/xop/include"
_CRLF = b"\r\n"


@dataclass(frozen=True, slots=True, repr=False)
class MtomMessage:
    """An HTTP body and its Content-Type (patient data inside: no repr of the body)."""

    content_type: str
    body: bytes
    message_id: str

    def __repr__(self) -> str:
        return f"MtomMessage({self.message_id}, {len(self.body)} bytes)"


def _envelope(
    request: etree._Element, assertion: bytes, to: str, message_id: str, action_uri: str = ACTION
) -> etree._Element:
    envelope = etree.Element(f"{{{SOAP12}}}Envelope", nsmap={"soap": SOAP12, "wsa": WSA})
    header = etree.SubElement(envelope, f"{{{SOAP12}}}Header")
    action = etree.SubElement(header, f"{{{WSA}}}Action")
    action.set(f"{{{SOAP12}}}mustUnderstand", "true")
    action.text = action_uri
    etree.SubElement(header, f"{{{WSA}}}MessageID").text = message_id
    etree.SubElement(header, f"{{{WSA}}}To").text = to
    security = etree.SubElement(header, f"{{{WSSE}}}Security", nsmap={"wsse": WSSE})
    security.append(parse_xml(assertion))
    body = etree.SubElement(envelope, f"{{{SOAP12}}}Body")
    body.append(request)
    return envelope


def _head(headers: list[tuple[str, str]]) -> bytes:
    """A part's header lines and the blank line that ends them (the content follows)."""
    return "".join(f"{k}: {v}\r\n" for k, v in headers).encode("ascii") + _CRLF


def mtom_message(
    request: etree._Element,
    documents: Mapping[str, bytes],
    assertion: bytes,
    to: str,
) -> MtomMessage:
    """Package ``request`` (its ``xdsb:Document`` elements are emptied and given an
    ``xop:Include`` to the part holding ``documents[id]``) with the signed ``assertion``
    (serialised bytes, inserted unchanged) for the repository at ``to``."""
    token = uuid.uuid4().hex
    message_id = f"urn:uuid:{uuid.uuid4()}"
    root_id = f"root.{token}@eai"
    parts: list[tuple[str, bytes]] = []
    for number, element in enumerate(request.iterfind(f"{{{XDSB}}}Document"), start=1):
        document_id = str(element.get("id"))
        content_id = f"doc{number}.{token}@eai"
        element.text = None
        for child in list(element):
            element.remove(child)
        etree.SubElement(element, f"{{{XOP}}}Include", nsmap={"xop": XOP}).set(
            "href", f"cid:{content_id}"
        )
        parts.append((content_id, documents[document_id]))
    envelope = etree.tostring(
        _envelope(request, assertion, to, message_id), xml_declaration=True, encoding="UTF-8"
    )
    boundary = f"MIMEBoundary_{token}"
    delimiter = b"--" + boundary.encode("ascii")
    while any(delimiter in content for _, content in parts) or delimiter in envelope:
        boundary = f"MIMEBoundary_{uuid.uuid4().hex}"  # never in practice: a random 128 bits
        delimiter = b"--" + boundary.encode("ascii")
    root_type = (
        f'application/xop+xml; charset=UTF-8; type="application/soap+xml"; action="{ACTION}"'
    )
    # the small pieces and each content side by side, joined once: a document's bytes are
    # copied once into the body (not into its part first, then into the body)
    chunks = [
        delimiter + _CRLF,
        _head(
            [
                ("Content-Type", root_type),
                ("Content-Transfer-Encoding", "binary"),
                ("Content-ID", f"<{root_id}>"),
            ]
        ),
        envelope,
    ]
    for content_id, content in parts:
        chunks.append(_CRLF + delimiter + _CRLF)
        chunks.append(
            _head(
                [
                    ("Content-Type", "application/octet-stream"),
                    ("Content-Transfer-Encoding", "binary"),
                    ("Content-ID", f"<{content_id}>"),
                ]
            )
        )
        chunks.append(content)
    chunks.append(_CRLF + delimiter + b"--" + _CRLF)
    content_type = (
        f'multipart/related; boundary="{boundary}"; type="application/xop+xml"; '
        f'start="<{root_id}>"; start-info="application/soap+xml"; action="{ACTION}"'
    )
    return MtomMessage(content_type, b"".join(chunks), message_id)


def soap_message(
    request: etree._Element, assertion: bytes, to: str, action: str = UPDATE_ACTION
) -> MtomMessage:
    """``request`` in a plain SOAP 1.2 envelope (``application/soap+xml``, no MTOM: it
    carries no document) with the signed ``assertion``, for the endpoint ``to``: how
    ITI-57 travels (its messages are SOAP 1.2 without attachments, ITI TF-2 Appendix V)."""
    message_id = f"urn:uuid:{uuid.uuid4()}"
    envelope = etree.tostring(
        _envelope(request, assertion, to, message_id, action),
        xml_declaration=True,
        encoding="UTF-8",
    )
    content_type = f'application/soap+xml; charset=UTF-8; action="{action}"'
    return MtomMessage(content_type, envelope, message_id)
