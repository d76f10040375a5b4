"""What a destination declares of its XDS metadata: its settings, the media types it reads.

Touches: nothing.

Light on purpose (the code tables, no XML): a destination's config model and its
registration import this, and ``eai check`` validates a routes.yaml with them alone; the
metadata itself is built by :mod:`eai.xds._metadata` when a document is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from eai.messages import MEDIA_CDA_XML, MEDIA_HL7V2
from eai.xds._code import Code
from eai.xds._codes import DEFAULT_CLASS_CODES, DEFAULT_FORMAT_CODES

__all__ = ["ACCEPTS", "MetadataSettings"]

ACCEPTS = (MEDIA_HL7V2, MEDIA_CDA_XML)
"""The media types a publication is read from (:func:`eai.xds.read_publication`)."""


@dataclass(frozen=True, slots=True)
class MetadataSettings:
    """The destination's part of the metadata (not in the message)."""

    source_id: str
    """XDSSubmissionSet.sourceId: the OID of the publishing system."""
    content_type: Code | None = None
    """contentTypeCode when PV1-2 gives none (a CDA alone, or an unknown patient class)."""
    class_codes: Mapping[str, Code] = field(default_factory=lambda: dict(DEFAULT_CLASS_CODES))
    """classCode by typeCode (LOINC)."""
    format_codes: Mapping[str, Code] = field(default_factory=lambda: dict(DEFAULT_FORMAT_CODES))
    """formatCode by CDA model templateId."""
