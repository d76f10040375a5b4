"""Read what a CI-SIS "CDA in HL7 v2" message carries: document, action, DMP/MSSanté metadata.

Touches: nothing.

Profile: ANS CI-SIS, *Volet de transmission d'un document CDA-R2 en HL7v2*
(IG-hl7v2-volet-transmission-document-cda-r2, volume 2; MSH-21
``2.1^CISIS_CDA_HL7_V2``):

- the document travels in an OBX of value type ED: OBX-3 = the document type
  (LOINC, or TRE_A05), OBX-5 = ``^TEXT^XML^Base64^<data>`` (ORU; ``text`` in
  MDM), OBX-11 = F (initial transmission), C (replacement), D (deletion);
- the action is also given by ORC-1 (NW new, RO replace, CA delete) and, in
  MDM, by the trigger event (T02 new, T10 replace, T04 delete); "La valeur du
  champ ORC-1 doit être cohérente avec la valeur du champ OBX-11 et dans le cas
  du message MDM avec l'évènement déclenchant": an inconsistent message is refused;
- OBX whose OBX-3.3 is ``MetaDMPMSS`` carry the DMP/MSSanté metadata: Y/N flags
  in OBX-5.1 (CE in ORU, CWE in MDM), mail bodies ``CORPSMAIL_*`` as ED;
- PRT segments (pre-adopted from v2.9) follow the document OBX: PRT-4.1 SB
  (sender), RCT (an MSSanté recipient; address in PRT-15.4), REPLY (reply-to).

The ED data is base64 "as defined by MIME" (HL7 v2.5 2.A.24): what is
unambiguous is decoded and said (:func:`decode_base64`): line breaks and
spaces (MIME lines, ``\\.br\\``), a missing final ``=`` padding (ANS's own
examples lack it). Anything else (a character outside the alphabet, padding in
the middle or in excess, a length that no padding completes) is refused.
:func:`check_documents` says, before routing, whether the message's document
would be refused, so that its routing facts are not used (see
``eai.routing``).

Everything here reads the message lazily and never logs a value: recipients
hold patient data (the patient mailbox is ``<INS>@patient.mssante.fr``).
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass, field

import pybase64
from lxml import etree

from eai.errors import InputError
from eai.hl7._reader import Hl7Message, Segment
from eai.xml import parse_xml

__all__ = [
    "CISIS_PROFILE",
    "DocumentCheck",
    "EmbeddedDocument",
    "MssParticipant",
    "check_documents",
    "decode_base64",
    "document_action",
    "document_root",
    "document_segments",
    "embedded_documents",
    "is_cisis",
    "is_plain_text",
    "looks_like_xml",
    "meta_dmp_mss",
    "mss_participants",
]

CISIS_PROFILE = "CISIS_CDA_HL7_V2"
"""MSH-21.2 of the CI-SIS transmission profile."""

META_SYSTEM = "MetaDMPMSS"
"""OBX-3.3 of the DMP/MSSanté metadata OBX."""

# INS OIDs (FR Core; CI-SIS annexe INS): NIR, NIA, NIR test, NIR demo.
_INS_OIDS = frozenset(
    {"1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.9", "1.2.250.1.213.1.4.10", "1.2.250.1.213.1.4.11"}
)
_PATIENT_MAILBOX = "@patient.mssante.fr"
_CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_FLAG = re.compile(r"[A-Z]{1,5}")
_SPACE = re.compile(r"\s+")
_BASE64_BODY = re.compile(r"[A-Za-z0-9+/]*")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CLINICAL_DOCUMENT = "{urn:hl7-org:v3}ClinicalDocument"

# Actions: MDM trigger (v2.6 ch. 9; T11 is HL7's "document cancel"), ORC-1, OBX-11 (table 0085).
_BY_TRIGGER = {"T02": "new", "T10": "replace", "T04": "delete", "T11": "delete"}
_BY_ORDER_CONTROL = {"NW": "new", "RO": "replace", "RP": "replace", "XO": "replace", "CA": "delete"}
_BY_RESULT_STATUS = {"F": "new", "C": "replace", "D": "delete"}


def is_cisis(message: Hl7Message) -> bool:
    """True when MSH-21 names the CI-SIS profile (any repetition, any component)."""
    msh = message.segment("MSH")
    return msh is not None and CISIS_PROFILE in msh.get(21)


def document_segments(message: Hl7Message) -> list[tuple[int, Segment]]:
    """The OBX (with their 1-based OBX occurrence) whose OBX-5 is an ED holding XML in base64.

    OBX-2 = ED, OBX-5.3 (data subtype) = XML, OBX-5.4 (encoding) = Base64, in any
    case; the MetaDMPMSS OBX are never documents.
    """
    found: list[tuple[int, Segment]] = []
    occurrence = 0
    for segment in message.segments():
        if segment.name != "OBX":
            continue
        occurrence += 1
        if segment.get(2).upper() != "ED" or segment.get(3, 1, 3) == META_SYSTEM:
            continue
        if segment.get(5, 1, 3).upper() == "XML" and segment.get(5, 1, 4).upper() == "BASE64":
            found.append((occurrence, segment))
    return found


@dataclass(frozen=True, slots=True, repr=False)
class EmbeddedDocument:
    """A document unpacked from an OBX-5 ED (the exact bytes that were base64-encoded)."""

    obx: int
    """Which OBX of the message (1-based occurrence)."""
    code: str
    """OBX-3.1: the document type (LOINC 11502-2, 18748-4...)."""
    code_system: str
    """OBX-3.3: ``LN`` or ``TRE_A05``."""
    result_status: str
    """OBX-11: F, C or D."""
    media_type: str
    """OBX-5.2 / OBX-5.3 as a MIME type, e.g. ``text/xml``."""
    data: bytes
    repairs: tuple[str, ...] = ()
    """What :func:`decode_base64` had to repair, named by field (no content)."""

    def __repr__(self) -> str:  # the bytes are patient data
        return f"EmbeddedDocument(obx={self.obx}, code={self.code!r}, {len(self.data)} bytes)"


_REPAIRS = {
    "spaces": "base64 split by line breaks or spaces, decoded without them",
    "padding": "base64 without its final '=' padding, decoded as if padded",
}


def decode_base64(text: str) -> tuple[bytes, tuple[str, ...]]:
    """The bytes of ED data ``text``, and which unambiguous defects were repaired
    (``spaces``, ``padding``; see the module docstring).

    Raises ValueError when ``text`` is not base64: a character outside the
    standard alphabet, ``=`` anywhere but at the end, more ``=`` than the length
    calls for, or a length (without spaces) of 4n+1, which no padding completes.
    """
    # the common case first, padded as it should be (counted without copying the
    # document-sized text). pybase64 (SIMD) in place of the standard library's decoder,
    # with the same ``validate=True`` rules (binascii.Error on a character outside the
    # alphabet or a bad padding): 0.01 ms instead of 0.68 for a 290 kB CR-BIO
    padded = len(text)
    while padded > len(text) - 4 and padded and text[padded - 1] == "=":
        padded -= 1  # 4 or more: no padding is that long (the slow path refuses it)
    if len(text) - padded == -padded % 4:
        try:
            return pybase64.b64decode(text, validate=True), ()
        except (binascii.Error, ValueError):
            pass
    repairs: list[str] = []
    data = _SPACE.sub("", text)
    if len(data) != len(text):
        repairs.append("spaces")
    body = data.rstrip("=")
    padding, missing = len(data) - len(body), -len(body) % 4
    if not _BASE64_BODY.fullmatch(body) or len(body) % 4 == 1 or padding > missing:
        raise ValueError("not base64")
    if padding < missing:
        repairs.append("padding")
    return pybase64.b64decode(body + "=" * missing, validate=True), tuple(repairs)


def _decode(
    message: Hl7Message, occurrence: int, segment: Segment
) -> tuple[bytes, tuple[str, ...]]:
    """OBX ``occurrence``'s ED data decoded, and its repairs; once per message (memo)."""
    key = ("ed", occurrence)
    found: tuple[bytes, tuple[str, ...]] | None = message.memo.get(key)
    if found is not None:
        return found
    where = f"OBX[{occurrence}]-5.5"
    try:
        raw, repairs = decode_base64(segment.get(5, 1, 5))
    except (binascii.Error, ValueError):
        raise InputError(f"{where}: the ED data is not valid base64", "102", where) from None
    found = message.memo[key] = raw, tuple(f"{where}: {_REPAIRS[r]}" for r in repairs)
    return found


def document_root(message: Hl7Message, document: EmbeddedDocument) -> etree._Element:
    """The root element of ``document`` (one of :func:`embedded_documents`), hardened parse
    (:func:`eai.xml.parse_xml`, whose InputError it raises), parsed once per message and
    shared by its readers (:func:`check_documents`, the ``cisis`` mapping source): read it,
    never change it."""
    key = ("xml", document.obx)
    root: etree._Element | None = message.memo.get(key)
    if root is None:
        root = message.memo[key] = parse_xml(document.data)
    return root


def embedded_documents(message: Hl7Message) -> list[EmbeddedDocument]:
    """Decode every document OBX (see :func:`document_segments`), in message order.

    Raises InputError when an OBX-5.5 is not base64 or does not decode to an XML
    document; the reason names the OBX, never its content. What was repaired to
    decode it is in each document's ``repairs``.
    """
    docs = []
    for occurrence, segment in document_segments(message):
        where = f"OBX[{occurrence}]-5.5"
        raw, repairs = _decode(message, occurrence, segment)
        if not looks_like_xml(raw):
            raise InputError(
                f"{where}: the ED data (OBX-5.3 XML) does not decode to an XML document",
                "102",
                where,
            )
        kind = segment.get(5, 1, 2).lower() or "text"
        docs.append(
            EmbeddedDocument(
                occurrence,
                segment.get(3, 1, 1),
                segment.get(3, 1, 3),
                segment.get(11),
                f"{'application' if kind == 'application' else 'text'}/xml",
                raw,
                repairs,
            )
        )
    return docs


def looks_like_xml(raw: bytes) -> bool:
    """Starts (after a UTF-8 BOM and spaces) with ``<``, or with a UTF-16 BOM."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return True
    return raw.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"<")


def is_plain_text(raw: bytes) -> bool:
    """UTF-8 text, not blank, without control characters (tab and line ends allowed): what
    a sender puts in an ED declared XML when it has no CDA (a placeholder, a note)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return bool(text.strip()) and _CONTROL.search(text) is None


@dataclass(frozen=True, slots=True)
class DocumentCheck:
    """Whether a message's document would be taken, before any mapping runs."""

    problem: str = ""
    """Why the document is refused ("" when it is not): OBX named, content never."""
    warnings: tuple[str, ...] = ()
    """What was repaired to decode it (see :func:`decode_base64`)."""
    cda: etree._Element | None = field(default=None, repr=False, compare=False)
    """The ``ClinicalDocument`` of the first document OBX when it is a CDA and nothing is
    refused (patient data: never log it)."""


def check_documents(message: Hl7Message) -> DocumentCheck:
    """Reads the document OBX as the ``cisis`` mapping source will, and says what it finds.

    Refused: an ED that is not base64 (:func:`decode_base64`), that decodes to XML
    which is not a CDA R2 document (hardened parse, a ``ClinicalDocument`` root or
    self-presenting form), or to neither XML nor text. A first document OBX that
    decodes to plain text is a document carried without a CDA (CI-SIS volume 2's
    placeholder; ``mappings.functions.cisis_source``): taken, and the OBX after it
    are not read, as there. A message without document OBX has nothing to check.
    """
    warnings: list[str] = []
    first: etree._Element | None = None
    for index, (occurrence, segment) in enumerate(document_segments(message)):
        where = f"OBX[{occurrence}]-5.5"
        try:
            raw, repairs = _decode(message, occurrence, segment)
        except InputError as exc:
            return DocumentCheck(exc.reason, tuple(warnings))
        warnings.extend(repairs)
        if looks_like_xml(raw):
            cda = _clinical_document(message, occurrence, raw)
            if cda is None:
                problem = f"{where}: the ED data (OBX-5.3 XML) does not decode to a CDA document"
                return DocumentCheck(problem, tuple(warnings))
            first = cda if index == 0 else first
        elif index == 0 and is_plain_text(raw):
            break
        else:
            problem = f"{where}: the ED data (OBX-5.3 XML) does not decode to an XML document"
            return DocumentCheck(problem, tuple(warnings))
    return DocumentCheck("", tuple(warnings), first)


def _clinical_document(message: Hl7Message, occurrence: int, raw: bytes) -> etree._Element | None:
    """The ``ClinicalDocument`` element (itself the root, or inside a self-presenting root)."""
    key = ("xml", occurrence)
    root: etree._Element | None = message.memo.get(key)
    if root is None:
        try:
            root = message.memo[key] = parse_xml(raw)
        except InputError:
            return None
    if root.tag == _CLINICAL_DOCUMENT:
        return root
    return next(root.iter(_CLINICAL_DOCUMENT), None)


def meta_dmp_mss(message: Hl7Message) -> dict[str, str]:
    """The MetaDMPMSS OBX as ``{OBX-3.1: OBX-5.1}`` (``DESTDMP: Y``...).

    An ED one (``CORPSMAIL_PS``, ``CORPSMAIL_PATIENT``: a mail body) gives ``Y``
    (present), never its content. A code that is not a short code token, or a
    value that is not a short upper-case code (Y, N, or another table 0532
    value), is replaced: the key is skipped, the value reads ``invalid``.
    """
    flags: dict[str, str] = {}
    for segment in message.segments():
        if segment.name != "OBX" or segment.get(3, 1, 3) != META_SYSTEM:
            continue
        key = segment.get(3, 1, 1)
        if not _CODE.fullmatch(key):
            continue
        if segment.get(2).upper() == "ED":
            flags[key] = "Y"
            continue
        value = segment.get(5, 1, 1).strip().upper()
        flags[key] = value if _FLAG.fullmatch(value) else "invalid"
    return flags


def document_action(message: Hl7Message) -> str:
    """``new``, ``replace``, ``delete``, or "" when the message says nothing about it.

    Read from the MDM trigger event, ORC-1 and the OBX-11 of the first document
    OBX (see the module docstring). Raises InputError when they disagree.
    """
    code, _, trigger = message.header.message_type.partition("^")
    signals: list[tuple[str, str, str]] = []
    if code == "MDM" and trigger in _BY_TRIGGER:
        signals.append(("MSH-9", trigger, _BY_TRIGGER[trigger]))
    order_control = message.get("ORC-1").strip().upper()
    if order_control in _BY_ORDER_CONTROL:
        signals.append(("ORC-1", order_control, _BY_ORDER_CONTROL[order_control]))
    documents = document_segments(message)
    if documents:
        status = documents[0][1].get(11).strip().upper()
        if status in _BY_RESULT_STATUS:
            signals.append(("OBX-11", status, _BY_RESULT_STATUS[status]))
    if not documents and code != "MDM":
        return ""  # an ORC alone (a lab order) says nothing about a document
    actions = {action for _, _, action in signals}
    if len(actions) > 1:
        said = ", ".join(f"{where} {value}" for where, value, _ in signals)
        raise InputError(
            f"CI-SIS: inconsistent document action ({said}); ORC-1, OBX-11 and the MDM "
            "trigger must agree",
            "207",
            signals[0][0],
        )
    return actions.pop() if actions else ""


@dataclass(frozen=True, slots=True, repr=False)
class MssParticipant:
    """One PRT of a CI-SIS message: a sender (SB), MSSanté recipient (RCT) or reply-to (REPLY).

    Holds patient data when ``kind`` is ``patient``: never log it (``repr`` shows
    role and kind only).
    """

    role: str
    """PRT-4.1: SB, RCT or REPLY."""
    kind: str
    """``patient``, ``professional``, ``organisation``, ``device`` or ``address`` (only a mail)."""
    address: str
    """PRT-15.4: the MSSanté mail address ("" when none)."""
    identifier: str
    """PRT-5.1 (person), PRT-8.10 (organisation) or PRT-10.1 (device)."""
    identifier_system: str
    """The assigning authority OID of the person or organisation identifier, when given."""
    identifier_type: str
    """PRT-5.13 / PRT-8.7: RPPS, IDNPS, INS, FINEG, UF..."""

    def __repr__(self) -> str:
        return f"MssParticipant(role={self.role!r}, kind={self.kind!r})"


def mss_participants(message: Hl7Message) -> list[MssParticipant]:
    """Every PRT segment of the message, in order."""
    found = []
    for segment in message.segments():
        if segment.name == "PRT":
            found.append(_participant(segment))
    return found


def _participant(prt: Segment) -> MssParticipant:
    address = prt.get(15, 1, 4).strip()
    person, org, device = prt.get(5, 1, 1), prt.get(8, 1, 10), prt.get(10, 1, 1)
    if person:
        # PRT-5.9 is an HD; some senders put the OID straight in PRT-5.9 (no subcomponents).
        system = prt.get(5, 1, 9, 2) or prt.get(5, 1, 9, 1)
        id_type = prt.get(5, 1, 13)
        patient = id_type == "INS" or system in _INS_OIDS
        kind, identifier = ("patient" if patient else "professional"), person
    elif org:
        system, id_type = prt.get(8, 1, 6, 2), prt.get(8, 1, 7)
        kind, identifier = "organisation", org
    elif device:
        system, id_type = "", ""
        kind, identifier = "device", device
    else:
        system = id_type = identifier = ""
        kind = "address"
    if address.lower().endswith(_PATIENT_MAILBOX):
        kind = "patient"
    return MssParticipant(prt.get(4, 1, 1), kind, address, identifier, system, id_type)
