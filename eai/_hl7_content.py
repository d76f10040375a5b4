"""The ``hl7v2`` content type: lazy HL7 v2 reader, PID-3 patient key, routing facts (CI-SIS, DMP).

Touches: nothing.

The CI-SIS facts exist only for messages that may carry a document: ORU and MDM,
or any message whose MSH-21 names ``CISIS_CDA_HL7_V2``; a plain ADT costs one
substring search and one segment lookup (ZFA) more. The facts never hold patient data:

- from the PAM FR 2.11 ZFA segment (DMP status and consent, section 6.14), in any
  message that has one (ADT A01/A04/A05/A14/A28/A31/Z99; the CI-SIS ORU/MDM
  profile does not list ZFA, but one sent there is read too): ``DMP_STATUS``
  (ZFA-1: ``ACTIF``, ``FERME``, ``INEXISTANT``), ``DMP_OPPOSITION`` (ZFA-9,
  opposition to feeding the DMP: ``Y`` for ``IO``, ``N`` for ``INO``, ``NA``
  for not collected) and ``DMP_CONSULTATION_CONSENT`` (ZFA-11: ``Y`` for ``IC``,
  ``N`` for ``INC``, ``NA``); an empty field gives no fact, another code
  ``invalid``. ZFA-4..8 are obsolete since 2.11 and not read;

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
that could not be read. The CDA's patient (``recordTarget``) is read once here,
as the content's ``document_patient``, for the identity charter.
"""

from __future__ import annotations

from collections.abc import Sequence

from eai import hl7
from eai.config import ListenerConfig
from eai.content import ParsedContent, register_content_type
from eai.hl7 import Hl7Message
from eai.identity_gate import identity_from_cda
from eai.messages import MEDIA_HL7V2, Recipient
from identity import patient_key_of

__all__ = ["cisis_facts", "dmp_consent_facts", "parse_hl7v2"]

_DOCUMENT_MESSAGES = ("ORU", "MDM")
# PAM FR 2.11 tables IHE-FRANCE-ZFA-1, -9, -11 (codes as sent; see the module docstring)
_ZFA_STATUS = {"ACTIF": "ACTIF", "FERME": "FERME", "INEXISTANT": "INEXISTANT"}
_ZFA_CODED = (
    ("DMP_STATUS", 1, _ZFA_STATUS),
    ("DMP_OPPOSITION", 9, {"IO": "Y", "INO": "N", "NA": "NA"}),
    ("DMP_CONSULTATION_CONSENT", 11, {"IC": "Y", "INC": "N", "NA": "NA"}),
)


def parse_hl7v2(payload: bytes, listener: ListenerConfig | None) -> ParsedContent:
    charset = str(getattr(listener, "default_charset", "UNICODE UTF-8"))
    msg = hl7.parse(payload, default_charset=charset)
    key = patient_key_of(msg)
    code = msg.header.message_type.partition("^")[0]
    dmp = dmp_consent_facts(msg)
    if code in _DOCUMENT_MESSAGES or hl7.is_cisis(msg):
        # The document is read now: its facts must not route it when it is refused.
        check = hl7.check_documents(msg)
        participants = hl7.mss_participants(msg)
        return ParsedContent(
            msg,
            key,
            msg.header.control_id,
            {**cisis_facts(msg, participants), **dmp},
            warnings=check.warnings,
            problem=check.problem,
            document_patient=None if check.cda is None else identity_from_cda(check.cda),
            recipients=tuple(
                Recipient(
                    p.role,
                    p.kind,
                    p.address,
                    p.identifier,
                    p.identifier_system,
                    p.identifier_type,
                )
                for p in participants
            ),
        )
    return ParsedContent(msg, key, control_id=msg.header.control_id, facts=dmp)


def cisis_facts(
    msg: Hl7Message, participants: Sequence[hl7.MssParticipant] | None = None
) -> dict[str, str]:
    """The routing facts of a message that may carry a document (see the module docstring);
    ``participants``: its PRT segments when already read.

    Raises InputError when the document action is inconsistent.
    """
    facts = hl7.meta_dmp_mss(msg)
    action = hl7.document_action(msg)
    if action:
        facts["document_action"] = action
    documents = hl7.document_segments(msg)
    if documents:
        facts["document_code"] = documents[0][1].get(3, 1, 1)
    if participants is None:
        participants = hl7.mss_participants(msg)
    recipients = [p for p in participants if p.role == "RCT"]
    if recipients:
        facts["mss_recipients"] = str(len(recipients))
        facts["mss_recipient_kinds"] = ",".join(sorted({p.kind for p in recipients}))
    return facts


def dmp_consent_facts(msg: Hl7Message) -> dict[str, str]:
    """The DMP facts of the message's ZFA segment (see the module docstring); {} without one."""
    zfa = msg.segment("ZFA")
    if zfa is None:
        return {}
    facts: dict[str, str] = {}
    for name, field, table in _ZFA_CODED:
        value = zfa.get(field, 1, 1).strip()
        if value and value != '""':  # HL7 explicit null: nothing known
            facts[name] = table.get(value, "invalid")
    return facts


register_content_type("hl7v2", parse_hl7v2, MEDIA_HL7V2)
