"""The ``cisis`` source kind: a CI-SIS ORU/MDM message whose embedded CDA is already mapped to FHIR.

Touches: nothing.

Registered on import (this module belongs beside ``mappings/_hl7v2.py``; it
lives here until it moves). Content type ``hl7v2``: a mapping with
``source: cisis`` reads HL7 v2 payloads.

``parse`` (and ``from_routable``, from the pipeline's parsed message) does the
work once per message: the document action (:func:`eai.hl7.document_action`,
refused when ORC-1, OBX-11 and the MDM trigger disagree), the first embedded
XML document (:func:`eai.hl7.embedded_documents`: a clear error when the ED
is not XML base64), and its FHIR Bundle by the CDA mapping a route would
choose (:func:`mappings.convert` on content type ``cda``, which parses with
the hardened settings).

A message that carries its document without a CDA (:func:`carried_document`)
is not refused: its "inner Bundle" is then the Patient that the PAM FR mapping
(:data:`PATIENT_MAPPING`, ``pamfr-adt``: one place for the PID rules) makes of
the message, and the mapping builds the DocumentReference from the HL7 v2
metadata (TXA, OBR, OBX). Without a CDA means, in order (CI-SIS volume 2
expects a CDA; national example ``mdm_t02_crimg_init.er7`` has a placeholder):

1. the first document OBX (ED, ``XML``, ``Base64``) decodes to text that is not
   markup at all (UTF-8, no control characters): ``text/plain``;
2. no such OBX, but an OBX ED of another type (``^application^pdf^Base64^``):
   that content, its type as given (OBX-5.2 ``/`` OBX-5.3);
3. no ED at all: the text OBX (TX, FT, ST; MetaDMPMSS excluded), one line
   each, ``text/plain``.

Everything else stays refused with one line: an ED that is not base64, that
decodes to neither XML nor text, or to XML that is not a CDA R2 document; a
message with no document at all.

Paths: ``entry:<Type>`` (``for_each`` only) visits the inner Bundle's entries
of that resource type, in order; ``document:not-cda`` (``for_each``, ``exists``)
is the OBX carrying a document without a CDA (none when there is a CDA), and
relative paths under it (``-3.1``, ``-11``) read that OBX; any other path is an
HL7 v2 path read from the message, as in ``source: hl7v2`` (``TXA-13.1``,
``MSH-9.2``, ``exists: TXA``).
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eai import hl7
from eai.cda import find_clinical_document, read_cda
from eai.errors import InputError
from eai.hl7 import Hl7Message, Segment
from mappings._source import (
    ExistsReader,
    ItemsReader,
    SourceKind,
    ValueReader,
    register_source,
    source_kind,
)
from mappings.functions.cda_document import clinical_document
from mappings.functions.cda_source import CdaSourceDocument

__all__ = [
    "NOT_CDA",
    "PATIENT_MAPPING",
    "CarriedDocument",
    "CisisDocument",
    "CisisSource",
    "carried_document",
]

_ENTRY = re.compile(r"entry:(?P<type>[A-Z][A-Za-z]{1,63})")
_ENTRY_KIND = "entry"
NOT_CDA = "document:not-cda"
"""The path of the OBX carrying a document without a CDA (``for_each``, ``exists``)."""
PATIENT_MAPPING = "pamfr-adt"
"""The HL7 v2 mapping whose Patient stands for the CDA's when there is no CDA."""

_META = "MetaDMPMSS"
_TEXT_TYPES = frozenset({"TX", "FT", "ST"})
_TOKEN = re.compile(r"[a-z0-9][a-z0-9.+-]{0,62}")


@dataclass(frozen=True, slots=True, repr=False)
class CarriedDocument:
    """A document a CI-SIS message carries without a CDA (see the module docstring)."""

    segment: Segment
    """The OBX carrying it (the first text OBX for text results)."""
    media_type: str
    """``text/plain``, or OBX-5.2/OBX-5.3 as given."""
    data: bytes

    def __repr__(self) -> str:  # the bytes are patient data
        return f"CarriedDocument({self.media_type!r}, {len(self.data)} bytes)"


def carried_document(message: Hl7Message) -> CarriedDocument | None:
    """The document ``message`` carries without a CDA, or None (a CDA, or nothing, or a
    content that must be refused: :func:`eai.hl7.embedded_documents` then says why)."""
    segments = hl7.document_segments(message)
    if segments:
        segment = segments[0][1]
        raw = _base64(segment.get(5, 1, 5))
        if raw is None or hl7.looks_like_xml(raw):
            return None
        return CarriedDocument(segment, "text/plain", raw) if hl7.is_plain_text(raw) else None
    obx = [s for s in message.segments() if s.name == "OBX" and s.get(3, 1, 3) != _META]
    for segment in obx:
        if segment.get(2).upper() != "ED" or segment.get(5, 1, 4).upper() != "BASE64":
            continue
        kind, sub = segment.get(5, 1, 2).lower(), segment.get(5, 1, 3).lower()
        raw = _base64(segment.get(5, 1, 5))
        if raw is not None and _TOKEN.fullmatch(kind) and _TOKEN.fullmatch(sub):
            return CarriedDocument(segment, f"{kind}/{sub}", raw)
        return None
    texts = [s for s in obx if s.get(2).upper() in _TEXT_TYPES]
    if not texts:
        return None
    lines = ["\n".join(s.get_all(5)) for s in texts]
    return CarriedDocument(texts[0], "text/plain", "\n".join(lines).encode("utf-8"))


def _base64(text: str) -> bytes | None:
    """The ED data decoded as :func:`eai.hl7.decode_base64` does (missing padding, line
    breaks repaired), or None when it is not base64."""
    try:
        return hl7.decode_base64(text)[0]
    except (binascii.Error, ValueError):
        return None


@dataclass(repr=False)
class CisisDocument:
    """One CI-SIS message, its action, DMP/MSSanté flags and the FHIR Bundle of its CDA."""

    message: Hl7Message
    action: str
    flags: dict[str, str]
    bundle: dict[str, Any]
    carried: CarriedDocument | None = None
    """The document when it is not a CDA (``bundle`` then holds the Patient only)."""
    relinks: dict[str, str] | None = field(default=None)
    """Inner fullUrl -> outer fullUrl, filled by the first ``cisis_copy``."""

    def __repr__(self) -> str:  # no patient data
        kind = "not a CDA, " if self.carried is not None else ""
        return f"CisisDocument(action={self.action!r}, {kind}{len(self.bundle['entry'])} resources)"


def _hl7v2() -> SourceKind:
    kind = source_kind("hl7v2")
    if kind is None:  # pragma: no cover - the engine always has it
        raise RuntimeError("the hl7v2 source kind is missing")
    return kind


class CisisSource:
    """The ``cisis`` source kind (see the module docstring)."""

    name = "cisis"
    content_type = "hl7v2"

    def parse(self, payload: bytes) -> CisisDocument:
        return self._unpack(hl7.parse(payload))

    def from_routable(self, routable: object) -> CisisDocument | None:
        return self._unpack(routable) if isinstance(routable, Hl7Message) else None

    @staticmethod
    def _unpack(message: Hl7Message) -> CisisDocument:
        action = hl7.document_action(message)
        flags = hl7.meta_dmp_mss(message)
        # The common case first: every document OBX decodes to XML (then no document is
        # carried without a CDA), each decoded once. Otherwise the order of the checks
        # decides, as described in the module docstring.
        try:
            documents = hl7.embedded_documents(message)
        except InputError:
            documents = None
        carried = None if documents else carried_document(message)
        if carried is not None:
            patient = _patient_mapping().run(message)
            entries = [e for e in patient["entry"] if e["resource"]["resourceType"] == "Patient"]
            return CisisDocument(message, action, flags, {"entry": entries}, carried)
        if documents is None:
            documents = hl7.embedded_documents(message)  # raises again: says why
        if not documents:
            raise InputError(
                "no document in the message: no OBX of type ED (CDA in base64) nor text OBX"
            )
        # the outer Bundle is checked in full: the light check is enough here
        return CisisDocument(message, action, flags, _cda_bundle(message, documents[0]))

    def message_type(self, document: CisisDocument) -> str:
        return document.message.header.message_type

    def seed(self, document: CisisDocument) -> bytes:
        return document.message.raw

    def compile_value(self, path: str, item_kind: Any) -> ValueReader:
        if item_kind == _ENTRY:
            raise ValueError("inside for_each entry:<Type>, use a function (cisis_copy)")
        read = _hl7v2().compile_value(path, item_kind)
        return lambda document, item: read(document.message, item)

    def compile_exists(self, path: str, item_kind: Any) -> ExistsReader:
        if path == NOT_CDA:
            return lambda document, item: document.carried is not None
        if item_kind == _ENTRY:
            raise ValueError("inside for_each entry:<Type>, use a function (cisis_copy)")
        exists = _hl7v2().compile_exists(path, item_kind)
        return lambda document, item: exists(document.message, item)

    def compile_items(self, path: str, item_kind: Any) -> tuple[ItemsReader, Any]:
        match = _ENTRY.fullmatch(path)
        if match is not None:
            wanted = match["type"]

            def entries(document: Any, item: Any) -> Sequence[Any]:
                return [
                    e for e in document.bundle["entry"] if e["resource"]["resourceType"] == wanted
                ]

            return entries, _ENTRY
        if path == NOT_CDA:
            _, obx_kind = _hl7v2().compile_items("OBX", None)

            def carrier(document: Any, item: Any) -> Sequence[Any]:
                carried = document.carried
                return [carried.segment] if carried is not None else []

            return carrier, obx_kind
        if item_kind == _ENTRY:
            raise ValueError("inside for_each entry:<Type>, use a function (cisis_copy)")
        items, kind = _hl7v2().compile_items(path, item_kind)
        return (lambda document, item: items(document.message, item)), kind


def _cda_bundle(message: Hl7Message, embedded: hl7.EmbeddedDocument) -> dict[str, Any]:
    """The FHIR of the CDA ``embedded`` by the mapping ``map: auto`` chooses, the document
    parsed once per message (:func:`eai.hl7.document_root`: the content parser's
    document check already parsed it) (what :func:`mappings.convert` on content type
    ``cda`` does, with the same errors, in the same order: no ClinicalDocument, no
    mapping, mapping failure)."""
    from mappings import convert, default_mapping_for  # late: mappings imports this package

    data = embedded.data
    root = hl7.document_root(message, embedded)
    routable = read_cda(find_clinical_document(root))
    name = default_mapping_for("cda", routable)
    if name is None:
        return convert(data, "cda", parsed=routable, validation="light")  # raises: says why
    document = CdaSourceDocument(clinical_document(root), data)
    return convert(data, "cda", name, parsed=document, validation="light")


def _patient_mapping() -> Any:
    from mappings import load_mapping  # late: mappings imports this package while loading

    return load_mapping(PATIENT_MAPPING)


if source_kind("cisis") is None:
    register_source(CisisSource())
