"""The ``hl7v2`` content type: lazy HL7 v2 reader + PID-3 patient key.

Touches: nothing.
"""

from __future__ import annotations

from eai import hl7
from eai.config import ListenerConfig
from eai.content import ParsedContent, register_content_type
from identity import patient_key_of

__all__ = ["parse_hl7v2"]


def parse_hl7v2(payload: bytes, listener: ListenerConfig | None) -> ParsedContent:
    charset = str(getattr(listener, "default_charset", "UNICODE UTF-8"))
    msg = hl7.parse(payload, default_charset=charset)
    return ParsedContent(msg, patient_key_of(msg), control_id=msg.header.control_id)


register_content_type("hl7v2", parse_hl7v2)
