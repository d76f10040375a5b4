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

Paths: ``entry:<Type>`` (``for_each`` only) visits the inner Bundle's entries
of that resource type, in order; any other path is an HL7 v2 path read from the
message, as in ``source: hl7v2`` (``TXA-13.1``, ``MSH-9.2``, ``exists: TXA``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eai import hl7
from eai.errors import InputError
from eai.hl7 import Hl7Message
from mappings._source import (
    ExistsReader,
    ItemsReader,
    SourceKind,
    ValueReader,
    register_source,
    source_kind,
)

__all__ = ["CisisDocument", "CisisSource"]

_ENTRY = re.compile(r"entry:(?P<type>[A-Z][A-Za-z]{1,63})")
_ENTRY_KIND = "entry"


@dataclass(repr=False)
class CisisDocument:
    """One CI-SIS message, its action, DMP/MSSanté flags and the FHIR Bundle of its CDA."""

    message: Hl7Message
    action: str
    flags: dict[str, str]
    bundle: dict[str, Any]
    relinks: dict[str, str] | None = field(default=None)
    """Inner fullUrl -> outer fullUrl, filled by the first ``cisis_copy``."""

    def __repr__(self) -> str:  # no patient data
        return f"CisisDocument(action={self.action!r}, {len(self.bundle['entry'])} resources)"


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
        from mappings import convert  # late: mappings imports this package while loading

        action = hl7.document_action(message)
        documents = hl7.embedded_documents(message)
        if not documents:
            raise InputError("no CDA in the message: no OBX of type ED holding XML in base64")
        # the outer Bundle is checked in full: the light check is enough here
        bundle = convert(documents[0].data, "cda", validation="light")
        return CisisDocument(message, action, hl7.meta_dmp_mss(message), bundle)

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
        if item_kind == _ENTRY:
            raise ValueError("inside for_each entry:<Type>, use a function (cisis_copy)")
        items, kind = _hl7v2().compile_items(path, item_kind)
        return (lambda document, item: items(document.message, item)), kind


if source_kind("cisis") is None:
    register_source(CisisSource())
