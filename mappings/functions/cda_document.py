"""Locate the ClinicalDocument of a CDA payload and describe the payload as a FHIR Attachment.

Touches: nothing.

- :func:`clinical_document` returns the ``ClinicalDocument`` element, also
  for the self-presenting ("autoprésentable") form, where the document is a
  top-level element inside an XSLT ``xsl:stylesheet`` (or ``xsl:transform``)
  root that renders it;
- :func:`attachment_of` gives ``size`` and ``hash`` of the exact bytes
  received: FHIR ``Attachment.hash`` is the base64 of the SHA-1 digest
  (R4 datatypes, Attachment), the value the DMP also takes (XDS ``hash``,
  hex there).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from lxml import etree

from eai.errors import InputError
from mappings.functions.cda_types import HL7

__all__ = ["CDA_MEDIA_TYPE", "XSL", "attachment_of", "clinical_document", "is_self_presenting"]

XSL = "http://www.w3.org/1999/XSL/Transform"
CDA_MEDIA_TYPE = "text/xml"
_ROOT = f"{{{HL7}}}ClinicalDocument"
_XSL_ROOTS = (f"{{{XSL}}}stylesheet", f"{{{XSL}}}transform")

Element = etree._Element


def is_self_presenting(root: Element) -> bool:
    """True when the document element is an XSLT stylesheet carrying the ClinicalDocument."""
    return root.tag in _XSL_ROOTS


def clinical_document(root: Element) -> Element:
    """The ``ClinicalDocument`` element of a parsed CDA payload.

    Raises InputError when the root is neither a ClinicalDocument nor an XSLT
    stylesheet holding one (the first, in document order, is taken).
    """
    if root.tag == _ROOT:
        return root
    if is_self_presenting(root):
        for element in root.iter(_ROOT):
            return element
        raise InputError("self-presenting CDA: the XSL stylesheet holds no ClinicalDocument")
    tag = root.tag if isinstance(root.tag, str) else "?"
    raise InputError(f"not a CDA R2 document: root element {tag[:80]!r}")


def attachment_of(raw: bytes) -> dict[str, Any]:
    """``size`` and ``hash`` (base64 of SHA-1) of the exact bytes of the document."""
    digest = hashlib.sha1(raw, usedforsecurity=False).digest()
    return {"size": len(raw), "hash": base64.b64encode(digest).decode("ascii")}
