"""Check one ITI-41 request as a repository would: MTOM package, SOAP envelope, ebRIM rules.

Touches: files (reads the XSDs under ``tests/xsd/xds``, once).

About 500 lines: the ITI-41 rules stay in one place, with the envelope, header and
submission-set checks that :mod:`standins.dmp._update_checks` (ITI-57) reuses.

Independent of :mod:`connectors.dmp` (it reads what is on the wire, with the standard
library's MIME parser and lxml): a client bug shows up as a refusal here. What it checks,
and against which published format:

- the HTTP Content-Type (SOAP 1.2 MTOM, W3C XOP 1.0 §4, IHE ITI TF-2x V.3.6):
  ``multipart/related`` with ``type="application/xop+xml"``, ``start``,
  ``start-info="application/soap+xml"`` and the ITI-41 ``action``; the root part
  ``application/xop+xml`` with ``type="application/soap+xml"``;
- the envelope against the W3C SOAP 1.2 envelope schema; WS-Addressing 1.0 ``Action`` =
  ITI-41 with ``soap:mustUnderstand``, ``MessageID`` an ``urn:uuid``, ``To`` = this
  endpoint; a ``wsse:Security`` header holding a SAML 2 assertion (inline, not a part);
- every ``xop:Include`` resolved to its part, then the ``ProvideAndRegisterDocumentSetRequest``
  against the IHE XDS.b / OASIS ebRS 3.0 / ebRIM 3.0 schemas;
- the ebRIM rules of ITI TF-3 §4.2 the DMP enforces: the submission set's and document
  entry's required slots, classifications and external identifiers; one patientId for
  the submission set, the entries and the VIHF resource-id; each entry's ``hash`` (SHA-1)
  and ``size`` equal to its part; unique ids not already registered; an RPLC association
  (a replacement) from an entry of the submission to a registered entryUUID; one IHE DSG
  signature entry with a ``signs`` association to the submission set, whose Manifest lists
  every other entry's uniqueId with the SHA-256 of its part (ITI TF-3 §5.5); the coded
  values in the DMP's value sets (:mod:`standins.dmp._code_checks`).

A problem gives ``(errorCode, codeContext)``: ``XDSRegistryMetadataError``,
``XDSRepositoryMetadataError``, ``XDSPatientIdDoesNotMatch``, ``XDSNonIdenticalHash``,
``XDSNonIdenticalSize``, ``XDSDuplicateUniqueIdInRegistry``, or a SOAP Sender fault for
what is not a well-formed ITI-41 request. A uniqueId already registered is
``XDSDuplicateUniqueIdInRegistry`` when the document's hash is the registered one (a
resubmission: a retry whose first answer was lost), ``XDSNonIdenticalHash`` when it differs
(IHE ITI TF-3 §4.2.4.1, Table 4.2.4.1-2).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from functools import cache
from pathlib import Path

from lxml import etree

from standins.dmp._code_checks import check_content_type, check_entry_codes

__all__ = [
    "Checked",
    "RequestRefused",
    "check_envelope",
    "check_header",
    "check_request",
    "check_request_parts",
    "check_submission_set",
    "resource_id",
    "schemas",
]

XSD_DIR = Path(__file__).resolve().parents[2] / "tests" / "xsd" / "xds"
ACTION = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
SOAP = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://www.w3.org/2005/08/addressing"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
XOP = "http://www.w3.org/2004/08/xop/include"
RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
XDSB = "urn:ihe:iti:xds-b:2007"
NS = {"soap": SOAP, "wsa": WSA, "wsse": WSSE, "saml2": SAML, "rim": RIM, "xdsb": XDSB, "xop": XOP}

_SS = {
    "author": "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d",
    "contentTypeCode": "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500",
}
_SS_IDS = {
    "patientId": "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446",
    "sourceId": "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832",
    "uniqueId": "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8",
}
_SS_NODE = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
_DE = {
    "author": "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d",
    "classCode": "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a",
    "confidentialityCode": "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f",
    "formatCode": "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d",
    "healthcareFacilityTypeCode": "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1",
    "practiceSettingCode": "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead",
    "typeCode": "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983",
}
_DE_IDS = {
    "patientId": "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427",
    "uniqueId": "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab",
}
_DE_SLOTS = ("creationTime", "hash", "languageCode", "serviceStartTime", "size", "sourcePatientId")
_VIHF = (
    "VIHF_Version",
    "Authentification_Mode",
    "Identifiant_Structure",
    "Secteur_Activite",
    "Ressource_URN",
    "urn:oasis:names:tc:xacml:2.0:resource:resource-id",
    "urn:oasis:names:tc:xspa:1.0:subject:subject-id",
    "urn:oasis:names:tc:xacml:2.0:subject:role",
    "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse",
    "LPS_Nom",
    "LPS_Version",
    "LPS_ID_HOMOLOGATION_DMP",
)


class RequestRefused(Exception):
    """Not an ITI-41 request this repository can read: answered with a SOAP fault."""

    def __init__(self, reason: str, code: str = "Sender") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass
class Checked:
    """What a request carried and what was wrong with its metadata."""

    envelope: bytes = b""
    """The SOAP envelope as received (xop:Include left in place)."""
    documents: dict[str, bytes] = field(default_factory=dict)
    """Document id -> the bytes of its part."""
    errors: list[tuple[str, str]] = field(default_factory=list)
    """(errorCode, codeContext) of each metadata problem."""
    patient_id: str = ""
    unique_ids: list[str] = field(default_factory=list)
    entry_ids: list[str] = field(default_factory=list)
    """The document entries' ids (entryUUIDs when the source gives them)."""
    signatures: list[bytes] = field(default_factory=list)
    """The submission set's signature documents (IHE DSG), to verify with xmlsec1."""
    replaced: list[str] = field(default_factory=list)
    """The targets of RPLC associations: the entryUUIDs this submission replaces."""
    message_id: str = ""
    updates: list[tuple[str, str]] = field(default_factory=list)
    """ITI-57: (entryUUID, new availabilityStatus) of each UpdateAvailabilityStatus."""
    hashes: dict[str, str] = field(default_factory=dict)
    """Each document entry's uniqueId -> its ``hash`` slot."""


@cache
def schemas() -> tuple[etree.XMLSchema, etree.XMLSchema]:
    """(SOAP 1.2 envelope, XDS.b ProvideAndRegisterDocumentSetRequest)."""
    soap = etree.XMLSchema(etree.parse(str(XSD_DIR / "soap" / "soap-1.2-envelope.xsd")))
    xds = etree.XMLSchema(etree.parse(str(XSD_DIR / "IHE" / "xds-b-with-xcf.xsd")))
    return soap, xds


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def _parts(content_type: str, body: bytes) -> tuple[EmailMessage, list[EmailMessage]]:
    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not isinstance(message, EmailMessage) or not message.is_multipart():
        raise RequestRefused("not a multipart/related MTOM package")
    return message, [p for p in message.iter_parts() if isinstance(p, EmailMessage)]


def _check_content_type(message: EmailMessage, action: str = ACTION) -> str:
    if message.get_content_type() != "multipart/related":
        raise RequestRefused(
            f"Content-Type {message.get_content_type()}: MTOM needs multipart/related"
        )
    wanted = {"type": "application/xop+xml", "start-info": "application/soap+xml", "action": action}
    for name, value in wanted.items():
        if message.get_param(name, header="content-type") != value:
            raise RequestRefused(f"Content-Type parameter {name} is not {value!r}")
    start = message.get_param("start", header="content-type")
    if not isinstance(start, str) or not start.startswith("<"):
        raise RequestRefused("Content-Type has no start=<root part>")
    return start


def _root(parts: list[EmailMessage], start: str) -> EmailMessage:
    root = next((p for p in parts if str(p.get("Content-ID", "")).strip() == start), None)
    if root is None:
        raise RequestRefused(f"no part has the start Content-ID {start}")
    if root.get_content_type() != "application/xop+xml":
        raise RequestRefused("the root part is not application/xop+xml")
    if root.get_param("type") != "application/soap+xml":
        raise RequestRefused('the root part lacks type="application/soap+xml"')
    return root


def _payload(part: EmailMessage) -> bytes:
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def check_header(
    envelope: etree._Element, endpoint: str, checked: Checked, expected: str = ACTION
) -> etree._Element:
    action = envelope.find("soap:Header/wsa:Action", NS)
    if action is None or (action.text or "").strip() != expected:
        raise RequestRefused(f"WS-Addressing Action is not {expected}")
    if action.get(f"{{{SOAP}}}mustUnderstand") not in ("true", "1"):
        raise RequestRefused("WS-Addressing Action lacks soap:mustUnderstand=true")
    message_id = (envelope.findtext("soap:Header/wsa:MessageID", namespaces=NS) or "").strip()
    if not re.fullmatch(r"urn:uuid:[0-9a-fA-F-]{36}", message_id):
        raise RequestRefused("WS-Addressing MessageID is not an urn:uuid")
    checked.message_id = message_id
    to = (envelope.findtext("soap:Header/wsa:To", namespaces=NS) or "").strip()
    if to != endpoint:
        raise RequestRefused(f"WS-Addressing To is {to!r}, not this endpoint")
    assertion = envelope.find("soap:Header/wsse:Security/saml2:Assertion", NS)
    if assertion is None:
        raise RequestRefused("no SAML assertion (VIHF) in the WS-Security header")
    names = {
        a.get("Name") for a in assertion.iterfind("saml2:AttributeStatement/saml2:Attribute", NS)
    }
    missing = [n for n in _VIHF if n not in names]
    if missing:
        raise RequestRefused(f"the VIHF lacks {', '.join(missing)}")
    version = assertion.findtext(
        "saml2:AttributeStatement/saml2:Attribute[@Name='VIHF_Version']/saml2:AttributeValue",
        namespaces=NS,
    )
    if version != "3.0":
        raise RequestRefused(f"VIHF_Version {version!r}, expected 3.0")
    return assertion


def _resolve_xop(request: etree._Element, parts: dict[str, bytes], checked: Checked) -> None:
    for document in request.iterfind("xdsb:Document", NS):
        include = document.find("xop:Include", NS)
        if include is None:
            raise RequestRefused("a Document is not optimised (no xop:Include): MTOM expected")
        href = str(include.get("href", ""))
        cid = f"<{href[4:]}>" if href.startswith("cid:") else ""
        if cid not in parts:
            raise RequestRefused(f"xop:Include {href} names no part")
        checked.documents[str(document.get("id"))] = parts[cid]
        document.remove(include)
        document.text = base64.b64encode(parts[cid]).decode("ascii")


def _values(owner: etree._Element, name: str) -> list[str]:
    return [
        v.text or ""
        for v in owner.xpath(f"rim:Slot[@name='{name}']/rim:ValueList/rim:Value", namespaces=NS)
    ]


def _external(owner: etree._Element, scheme: str) -> list[str]:
    return [
        str(e.get("value", ""))
        for e in owner.iterfind(f"rim:ExternalIdentifier[@identificationScheme='{scheme}']", NS)
    ]


def _classified(owner: etree._Element, scheme: str) -> list[etree._Element]:
    return list(owner.iterfind(f"rim:Classification[@classificationScheme='{scheme}']", NS))


def _check_ebrim(
    request: etree._Element, resource_id: str, registered: Mapping[str, str], checked: Checked
) -> None:
    objects = request.find(
        "lcm:SubmitObjectsRequest/rim:RegistryObjectList",
        {**NS, "lcm": "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"},
    )
    if objects is None:
        raise RequestRefused("no RegistryObjectList")
    ss = check_submission_set(objects, resource_id, checked)
    if ss is not None:
        unique_ids = list(_external(ss, _SS_IDS["uniqueId"]))
        _check_ebrim_entries(objects, checked.patient_id, unique_ids, registered, checked)


def check_submission_set(
    objects: etree._Element, resource_id: str, checked: Checked
) -> etree._Element | None:
    """The one submission set of ``objects`` with its required attributes (ITI TF-3
    §4.2.3.3: submissionTime, author, contentTypeCode, patientId, sourceId, uniqueId), its
    patientId that of the VIHF's resource-id (``checked.patient_id``); None (an error
    noted) when there is not exactly one."""
    err = checked.errors
    packages = objects.findall("rim:RegistryPackage", NS)
    if len(packages) != 1:
        err.append(("XDSRegistryMetadataError", f"{len(packages)} submission sets, expected 1"))
        return None
    ss = packages[0]
    if not any(
        c.get("classificationNode") == _SS_NODE for c in ss.iterfind("rim:Classification", NS)
    ):
        err.append(
            (
                "XDSRegistryMetadataError",
                "the RegistryPackage is not classified as a submission set",
            )
        )
    if not _values(ss, "submissionTime"):
        err.append(("XDSRegistryMetadataError", "submission set: no submissionTime"))
    for name, scheme in _SS.items():
        if not _classified(ss, scheme):
            err.append(("XDSRegistryMetadataError", f"submission set: no {name}"))
    check_content_type(ss, err)
    ss_ids = {name: _external(ss, scheme) for name, scheme in _SS_IDS.items()}
    for name, values in ss_ids.items():
        if len(values) != 1:
            err.append(
                ("XDSRegistryMetadataError", f"submission set: {len(values)} {name}, expected 1")
            )
    patient = ss_ids["patientId"][0] if ss_ids["patientId"] else ""
    checked.patient_id = patient
    if patient != resource_id:
        err.append(
            (
                "XDSPatientIdDoesNotMatch",
                "submission set patientId differs from the VIHF resource-id",
            )
        )
    return ss


def _check_ebrim_entries(
    objects: etree._Element,
    patient: str,
    unique_ids: list[str],
    registered: Mapping[str, str],
    checked: Checked,
) -> None:
    err = checked.errors
    entries = objects.findall("rim:ExtrinsicObject", NS)
    if not entries:
        err.append(("XDSRegistryMetadataError", "no document entry"))
    for entry in entries:
        entry_id = str(entry.get("id"))
        for slot in _DE_SLOTS:
            if len(_values(entry, slot)) != 1:
                err.append(
                    ("XDSRegistryMetadataError", f"{entry_id}: slot {slot} missing or repeated")
                )
        for name, scheme in _DE.items():
            if not _classified(entry, scheme):
                err.append(("XDSRegistryMetadataError", f"{entry_id}: no {name}"))
        check_entry_codes(entry, err)
        ids = {name: _external(entry, scheme) for name, scheme in _DE_IDS.items()}
        if ids["patientId"] != [patient]:
            err.append(
                (
                    "XDSPatientIdDoesNotMatch",
                    f"{entry_id}: patientId differs from the submission set's",
                )
            )
        if len(ids["uniqueId"]) != 1:
            err.append(("XDSRegistryMetadataError", f"{entry_id}: no uniqueId"))
        elif "^" in ids["uniqueId"][0]:
            err.append(("XDSRegistryMetadataError", f"{entry_id}: uniqueId OID^extension refused"))
        unique_ids += ids["uniqueId"]
        checked.hashes.update(dict.fromkeys(ids["uniqueId"], "".join(_values(entry, "hash"))))
        content = checked.documents.get(entry_id)
        if content is None:
            err.append(("XDSMissingDocument", f"{entry_id}: no Document for this entry"))
            continue
        if _values(entry, "hash") != [hashlib.sha1(content).hexdigest()]:  # noqa: S324 - XDS
            err.append(
                ("XDSNonIdenticalHash", f"{entry_id}: hash differs from the document's SHA-1")
            )
        if _values(entry, "size") != [str(len(content))]:
            err.append(("XDSNonIdenticalSize", f"{entry_id}: size differs from the document's"))
    checked.entry_ids = [str(e.get("id")) for e in entries]
    _check_dsg(objects, entries, checked)
    for association in objects.iterfind("rim:Association", NS):
        if association.get("associationType") != "urn:ihe:iti:2007:AssociationType:RPLC":
            continue
        target = str(association.get("targetObject", ""))
        if association.get("sourceObject") not in checked.entry_ids:
            err.append(
                ("XDSRegistryMetadataError", "RPLC: the source is not an entry of this submission")
            )
        elif target not in registered:
            err.append(
                ("UnresolvedReferenceException", f"RPLC: {target} is no registered document entry")
            )
        else:
            checked.replaced.append(target)
    seen: set[str] = set()
    for unique_id in unique_ids:
        previous, mine = registered.get(unique_id, ""), checked.hashes.get(unique_id, "")
        if unique_id not in seen and previous and mine and previous != mine:
            # IHE ITI TF-3 4.2.4.1: a known uniqueId whose hash differs is no resubmission
            err.append(
                (
                    "XDSNonIdenticalHash",
                    f"uniqueId {unique_id} already registered with another hash",
                )
            )
        elif unique_id in registered or unique_id in seen:
            err.append(
                ("XDSDuplicateUniqueIdInRegistry", f"uniqueId {unique_id} already registered")
            )
        seen.add(unique_id)
    checked.unique_ids = unique_ids


_DSG_FORMAT = "http://www.w3.org/2000/09/xmldsig#"
_SIGNS = "urn:ihe:iti:2007:AssociationType:signs"


def _check_dsg(objects: etree._Element, entries: list[etree._Element], checked: Checked) -> None:
    """IHE DSG: one signature entry signing the submission set, whose Manifest lists every
    other entry's uniqueId with the SHA-256 of its part (the XML signature itself is
    xmlsec1's, in :mod:`standins.dmp._signature`)."""
    err = checked.errors
    unique = {str(e.get("id")): (_external(e, _DE_IDS["uniqueId"]) or [""])[0] for e in entries}
    signatures = [
        e
        for e in entries
        if any(
            c.get("nodeRepresentation") == _DSG_FORMAT for c in _classified(e, _DE["formatCode"])
        )
    ]
    if len(signatures) != 1:
        err.append(
            ("XDSRegistryMetadataError", f"{len(signatures)} submission-set signatures, expected 1")
        )
        return
    signature_id = str(signatures[0].get("id"))
    signs = [
        a
        for a in objects.iterfind("rim:Association", NS)
        if a.get("associationType") == _SIGNS and a.get("sourceObject") == signature_id
    ]
    packages = {p.get("id") for p in objects.iterfind("rim:RegistryPackage", NS)}
    if len(signs) != 1 or signs[0].get("targetObject") not in packages:
        err.append(("XDSRegistryMetadataError", "the signature does not sign the submission set"))
    content = checked.documents.get(signature_id, b"")
    checked.signatures.append(content)
    try:
        signature = etree.fromstring(content, _parser())
    except etree.XMLSyntaxError:
        err.append(("XDSRegistryMetadataError", "the signature document is not XML"))
        return
    ds = {"ds": "http://www.w3.org/2000/09/xmldsig#"}
    listed = {
        str(r.get("URI", "")): (r.findtext("ds:DigestValue", namespaces=ds) or "")
        for r in signature.iterfind("ds:Object/ds:Manifest/ds:Reference", ds)
    }
    for entry_id, unique_id in unique.items():
        if entry_id == signature_id:
            continue
        digest = base64.b64encode(hashlib.sha256(checked.documents.get(entry_id, b"")).digest())
        if listed.get(f"urn:oid:{unique_id}") != digest.decode("ascii"):
            err.append(
                (
                    "XDSRegistryMetadataError",
                    f"the signature's Manifest does not sign {unique_id} as sent",
                )
            )


def check_request_parts(content_type: str, body: bytes, action: str) -> bytes:
    """The root part (the envelope) of an MTOM package for ``action``; else RequestRefused."""
    message, parts = _parts(content_type, body)
    return _payload(_root(parts, _check_content_type(message, action)))


def check_envelope(raw: bytes) -> etree._Element:
    """The envelope parsed (hardened) and valid against the W3C SOAP 1.2 schema; else
    RequestRefused."""
    try:
        envelope = etree.fromstring(raw, _parser())
    except etree.XMLSyntaxError as exc:
        raise RequestRefused(f"the envelope is not well-formed XML: {exc}") from exc
    soap_xsd, _ = schemas()
    # The SOAP schema processes header blocks laxly, and libxml2 then chokes on the VIHF's
    # hl7v3 xsi:type="CE" (no HL7 v3 schema loaded): the envelope's structure is checked
    # on a copy without the Security block's content, the VIHF by its own rules below.
    shell = copy.deepcopy(envelope)
    for security in shell.iterfind("soap:Header/wsse:Security", NS):
        for child in list(security):
            security.remove(child)
    if not soap_xsd.validate(shell):
        raise RequestRefused(f"the envelope is not SOAP 1.2: {soap_xsd.error_log.last_error}")
    return envelope


def resource_id(assertion: etree._Element) -> str:
    """The VIHF's resource-id (the patient's INS as an XDS patientId)."""
    return (
        assertion.findtext(
            "saml2:AttributeStatement/saml2:Attribute"
            "[@Name='urn:oasis:names:tc:xacml:2.0:resource:resource-id']/saml2:AttributeValue",
            namespaces=NS,
        )
        or ""
    )


def check_request(
    content_type: str, body: bytes, endpoint: str, registered: Mapping[str, str]
) -> tuple[Checked, etree._Element]:
    """Check one request against the ``registered`` unique ids (and entryUUIDs; -> the
    document's hash, "" for the rest); returns what it carried (with its metadata errors)
    and its assertion element (for the signature check). Raises RequestRefused (SOAP
    fault)."""
    message, parts = _parts(content_type, body)
    start = _check_content_type(message)
    root = _root(parts, start)
    checked = Checked(envelope=_payload(root))
    by_cid = {str(p.get("Content-ID", "")).strip(): _payload(p) for p in parts if p is not root}
    envelope = check_envelope(checked.envelope)
    _, xds_xsd = schemas()
    assertion = check_header(envelope, endpoint, checked)
    request = envelope.find("soap:Body/xdsb:ProvideAndRegisterDocumentSetRequest", NS)
    if request is None:
        raise RequestRefused("the Body holds no ProvideAndRegisterDocumentSetRequest")
    _resolve_xop(request, by_cid, checked)
    if not xds_xsd.validate(request):
        error = xds_xsd.error_log.last_error
        said = f"line {error.line}: {error.message}" if error is not None else "invalid"
        checked.errors.append(("XDSRegistryMetadataError", f"XDS.b schema: {said}"))
        return checked, assertion
    _check_ebrim(request, resource_id(assertion), registered, checked)
    return checked, assertion
