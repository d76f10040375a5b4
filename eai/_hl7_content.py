"""The ``hl7v2`` content type: lazy HL7 v2 reader, PID-3 patient key, CI-SIS routing facts.

Touches: nothing.

Routing facts exist only for messages that may carry a document: ORU and MDM,
or any message whose MSH-21 names ``CISIS_CDA_HL7_V2``; a plain ADT costs one
substring search more than before. The facts never hold patient data:

- ``<MetaDMPMSS code>``: ``Y`` / ``N`` (``DESTDMP``, ``DESTMSSANTEPS``,
  ``DESTMSSANTEPAT``, ``MASQUE_PS``, ``INVISIBLE_PATIENT``,
  ``INVISIBLE_REP_LEGAUX``, ``CONNEXION_SECRETE``, ``MODIF_CONF_CODE``,
  ``ACK_RECEPTION``, ``ACK_LECTURE_MSS``); the mail bodies ``CORPSMAIL_*`` give
  ``Y`` when present, never their text;
- ``document_action``: ``new`` / ``replace`` / ``delete`` (MDM trigger, ORC-1,
  OBX-11; an inconsistent message is refused, as the CI-SIS profile says);
- ``document_code``: OBX-3.1 of the OBX carrying the document (``11502-2``);
- ``mss_recipients``: how many MSSanté recipients (PRT-4 ``RCT``) and
  ``mss_recipient_kinds``: which kinds, comma-joined and sorted
  (``organisation,patient,professional``). The addresses themselves, which
  identify the patient for a patient mailbox, are read by connectors with
  :func:`eai.hl7.mss_participants`.

The embedded document is checked at parse time (:func:`eai.hl7.check_documents`):
what was repaired to decode it becomes the content's ``warnings``; a refused
document its ``problem``, and then no route reading a fact takes the message
(:func:`eai.routing.evaluate`): DESTDMP=Y must not send to the DMP a document
that could not be read.
"""

from __future__ import annotations

from eai import hl7
from eai.config import ListenerConfig
from eai.content import ParsedContent, register_content_type
from eai.hl7 import Hl7Message
from identity import patient_key_of

__all__ = ["cisis_facts", "parse_hl7v2"]

_DOCUMENT_MESSAGES = ("ORU", "MDM")


def parse_hl7v2(payload: bytes, listener: ListenerConfig | None) -> ParsedContent:
    charset = str(getattr(listener, "default_charset", "UNICODE UTF-8"))
    msg = hl7.parse(payload, default_charset=charset)
    key = patient_key_of(msg)
    code = msg.header.message_type.partition("^")[0]
    if code in _DOCUMENT_MESSAGES or hl7.is_cisis(msg):
        # The document is read now: its facts must not route it when it is refused.
        check = hl7.check_documents(msg)
        return ParsedContent(
            msg,
            key,
            msg.header.control_id,
            cisis_facts(msg),
            warnings=check.warnings,
            problem=check.problem,
        )
    return ParsedContent(msg, key, control_id=msg.header.control_id)


def cisis_facts(msg: Hl7Message) -> dict[str, str]:
    """The routing facts of a message that may carry a document (see the module docstring).

    Raises InputError when the document action is inconsistent.
    """
    facts = hl7.meta_dmp_mss(msg)
    action = hl7.document_action(msg)
    if action:
        facts["document_action"] = action
    documents = hl7.document_segments(msg)
    if documents:
        facts["document_code"] = documents[0][1].get(3, 1, 1)
    recipients = [p for p in hl7.mss_participants(msg) if p.role == "RCT"]
    if recipients:
        facts["mss_recipients"] = str(len(recipients))
        facts["mss_recipient_kinds"] = ",".join(sorted({p.kind for p in recipients}))
    return facts


register_content_type("hl7v2", parse_hl7v2)
