"""Read HL7 v2 messages losslessly and lazily, and build their acknowledgements.

Touches: nothing.

``read_header`` checks a whole message and returns its MSH (the listener's hot
path); ``parse`` returns an ``Hl7Message`` whose fields are split on demand;
``build_ack`` answers; ``guess_control_id`` finds the MSH-10 to answer to when
the message was refused; ``embedded_documents``, ``meta_dmp_mss``,
``document_action`` and ``mss_participants`` read a CI-SIS "CDA in HL7 v2"
message (``eai.hl7._cisis``). Path syntax for ``Hl7Message.get`` and
``validate_path``: ``SEG[occ]-field[rep].component.subcomponent``, 1-based, e.g.
``PID-3[2].4.2``, ``OBX[3]-5`` (details in ``eai.hl7._reader``).
"""

from eai.hl7._ack import build_ack
from eai.hl7._charset import codec_for_charset
from eai.hl7._cisis import (
    DocumentCheck,
    EmbeddedDocument,
    MssParticipant,
    check_documents,
    decode_base64,
    document_action,
    document_root,
    document_segments,
    embedded_documents,
    is_cisis,
    is_plain_text,
    looks_like_xml,
    meta_dmp_mss,
    mss_participants,
)
from eai.hl7._escape import escape, unescape
from eai.hl7._header import MessageHeader, guess_control_id, read_header
from eai.hl7._lines import normalise_segment_separators
from eai.hl7._path import validate_path
from eai.hl7._reader import Hl7Message, Segment, parse
from eai.hl7._structure import structure_problem

__all__ = [
    "structure_problem",
    "Hl7Message",
    "MessageHeader",
    "Segment",
    "DocumentCheck",
    "EmbeddedDocument",
    "MssParticipant",
    "build_ack",
    "check_documents",
    "codec_for_charset",
    "decode_base64",
    "document_action",
    "document_root",
    "document_segments",
    "embedded_documents",
    "escape",
    "guess_control_id",
    "is_cisis",
    "is_plain_text",
    "looks_like_xml",
    "meta_dmp_mss",
    "mss_participants",
    "normalise_segment_separators",
    "parse",
    "read_header",
    "unescape",
    "validate_path",
]
