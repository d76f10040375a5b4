"""The ``cda`` source kind: mapping paths are XPath 1.0 on a CDA R2 document parsed by lxml.

Touches: nothing.

Registered on import unless the engine already provides a ``cda`` kind (this
module belongs beside ``mappings/_hl7v2.py``; it lives here until it moves).

- ``parse``: the hardened parser (:func:`eai.xml.parse_xml`: no entities, no
  DTD, no network), then the ``ClinicalDocument`` (also inside the XSL root of
  a self-presenting document); the exact bytes are kept for the attachment hash;
- paths: XPath 1.0 evaluated from the ``ClinicalDocument`` element, or from the
  current ``for_each`` item (an element); prefixes ``hl7:`` (urn:hl7-org:v3),
  ``sdtc:``, ``lab:``, ``xsi:``. A value is the first non-empty string value of
  the result (XPath string functions such as ``concat()`` work); ``for_each``
  visits the elements of a node-set, in document order;
- ``message_type``: ``CDA^<ClinicalDocument/code/@code>`` (what
  ``default_for.document_code`` tests).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lxml import etree

from eai.xml import parse_xml
from mappings._source import (
    ExistsReader,
    ItemsReader,
    ValueReader,
    register_source,
    source_kind,
)
from mappings.functions.cda_document import clinical_document
from mappings.functions.cda_types import HL7

__all__ = ["NAMESPACES", "CdaSource", "CdaSourceDocument"]

NAMESPACES = {
    "hl7": HL7,
    "sdtc": "urn:hl7-org:sdtc",
    "lab": "urn:oid:1.3.6.1.4.1.19376.1.3.2",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
}
_ELEMENT = "element"  # the only item kind: paths read the same from any element


@dataclass(frozen=True, slots=True, repr=False)
class CdaSourceDocument:
    """A parsed CDA: its ``ClinicalDocument`` element and the bytes received."""

    element: etree._Element
    raw: bytes

    def __repr__(self) -> str:  # no patient data
        return f"CdaSourceDocument({len(self.raw)} bytes)"


@functools.lru_cache(maxsize=4096)
def _xpath(path: str) -> etree.XPath:
    if not path.strip():
        raise ValueError("empty XPath")
    try:
        return etree.XPath(path, namespaces=NAMESPACES, smart_strings=False)
    except etree.XPathSyntaxError as exc:
        raise ValueError(
            f"invalid XPath {path!r} ({exc}): XPath 1.0 from the ClinicalDocument or the "
            "for_each item, prefixes hl7:, sdtc:, lab:, xsi:"
        ) from None


def _string(item: Any) -> str:
    if isinstance(item, str):
        return item.strip()
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, float):
        if math.isnan(item) or math.isinf(item):
            return ""
        return str(int(item)) if item.is_integer() else repr(item)
    if isinstance(item, etree._Element):
        return " ".join("".join(item.itertext()).split())
    return ""


def _context(document: CdaSourceDocument, item: Any) -> etree._Element:
    return item if isinstance(item, etree._Element) else document.element


class CdaSource:
    """The ``cda`` source kind (see the module docstring)."""

    name = "cda"
    content_type = "cda"

    def parse(self, payload: bytes) -> CdaSourceDocument:
        root = parse_xml(payload)
        return CdaSourceDocument(clinical_document(root), bytes(payload))

    def from_routable(self, routable: object) -> CdaSourceDocument | None:
        """``routable`` itself when it is already a :class:`CdaSourceDocument` (the
        ``cisis`` source's CDA, parsed once); else None: the attachment needs the exact
        bytes, so the payload is parsed again."""
        return routable if isinstance(routable, CdaSourceDocument) else None

    def message_type(self, document: CdaSourceDocument) -> str:
        code = document.element.find(f"{{{HL7}}}code")
        value = (code.get("code") or "").strip() if code is not None else ""
        return f"CDA^{value}" if value else "CDA"

    def seed(self, document: CdaSourceDocument) -> bytes:
        return document.raw

    def compile_value(self, path: str, item_kind: Any) -> ValueReader:
        xpath = _xpath(path)

        def read(document: Any, item: Any) -> str:
            result = xpath(_context(document, item))
            if isinstance(result, list):
                for node in result:
                    text = _string(node)
                    if text:
                        return text
                return ""
            return _string(result)

        return read

    def compile_exists(self, path: str, item_kind: Any) -> ExistsReader:
        xpath = _xpath(path)

        def exists(document: Any, item: Any) -> bool:
            result = xpath(_context(document, item))
            if isinstance(result, list):
                return bool(result)
            return bool(_string(result)) and result is not False

        return exists

    def compile_items(self, path: str, item_kind: Any) -> tuple[ItemsReader, Any]:
        xpath = _xpath(path)

        def items(document: Any, item: Any) -> Sequence[Any]:
            result = xpath(_context(document, item))
            if not isinstance(result, list):
                return []
            return [node for node in result if isinstance(node, etree._Element)]

        return items, _ELEMENT


if source_kind("cda") is None:
    register_source(CdaSource())
