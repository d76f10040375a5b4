"""What the CDA intake listeners share: the verdict on a received document and its journal entry.

Touches: files (loads the CDA schema once, through :mod:`eai.cda_schema`).

:func:`examine` decides, without I/O, what a received body is: a CDA to
journal as ``received``, or a rejection with its reason (hostile or malformed
XML, not a CDA, schema errors with line numbers). The file-drop and HTTP
listeners call it on a worker thread (it parses and validates), journal the
:func:`journal_entry` it leads to, and only then answer or move the file.

A retransmission is the same bytes on the same listener with the same
verdict, line terminators aside (XML 1.0 section 2.11: a parser reads CRLF and CR
as LF, so a copy that went through a CRLF conversion is the same document): the
dedup key is ``<listener>|cda|<status>|sha256:<hex of the bytes, CRLF and CR as
LF>``, so the journal returns the first message id instead of storing a second copy
(a document rejected under an older schema and sent again after a fix is a new
entry, since its status differs). This is the rule of HL7 v2 over MLLP too (same
content, line terminators aside); a CDA has no control id a sender could reuse, its
key is its content. A document with LF line ends has the digest of its bytes as they
are, as before this rule.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import Field

from eai.cda import CdaHeader, find_clinical_document, read_cda
from eai.cda_schema import CdaSchema, SchemaIssue, load_schema
from eai.config import ListenerConfig
from eai.errors import InputError
from eai.messages import JournalEntry
from eai.xml import parse_xml

__all__ = [
    "CONTENT_TYPE",
    "CdaIntakeConfig",
    "Verdict",
    "examine",
    "journal_entry",
    "schema_for",
]

CONTENT_TYPE = "cda"
MIB = 1024 * 1024

# Column widths of the journal's metadata (eai.store schema): values are cut to fit.
_WIDTH = {"control_id": 128, "message_type": 32, "sending": 128, "peer": 128}


class CdaIntakeConfig(ListenerConfig):
    """Settings every CDA intake listener has (schema validation)."""

    cda_schema: Path | None = Field(
        default=None,
        description="path of CDA_extended.xsd (it includes its sibling files, so point at it "
        "where it lies); relative to the engine's working directory. Unset: "
        "<repository>/../shared/fixtures/xsd/infrastructure/cda/CDA_extended.xsd",
        examples=["/etc/eai/xsd/infrastructure/cda/CDA_extended.xsd"],
    )
    validate_schema: bool = Field(
        default=True,
        description="validate each document against cda_schema; an invalid one is journaled "
        "as rejected with the schema's first errors",
    )


def schema_for(config: CdaIntakeConfig) -> CdaSchema | None:
    """The compiled schema the listener validates with (ConfigError when it cannot load)."""
    return load_schema(config.cda_schema) if config.validate_schema else None


Outcome = Literal["accepted", "bad_xml", "not_cda", "schema", "too_large", "not_file"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a body is: ``accepted`` (journal as received) or why it is rejected.

    ``bad_xml``: not well-formed or refused by the hardened parser (HTTP 400);
    ``not_cda`` / ``schema``: XML, but not a CDA conforming to the schema (422);
    ``too_large`` / ``not_file``: refused before reading (its bytes are not stored).
    """

    outcome: Outcome
    reason: str = ""
    issues: tuple[SchemaIssue, ...] = ()
    header: CdaHeader | None = None

    @property
    def accepted(self) -> bool:
        return self.outcome == "accepted"

    def describe(self) -> str:
        """The reason with the schema's first errors, one line each (no document values)."""
        lines = [self.reason, *(str(i) for i in self.issues)]
        return "\n".join(line for line in lines if line)


def examine(payload: bytes, schema: CdaSchema | None) -> Verdict:
    """Parses (hardened), finds the ClinicalDocument, validates, reads the header. CPU only."""
    try:
        root = parse_xml(payload)
    except InputError as exc:
        return Verdict("bad_xml", exc.reason)
    try:
        document = find_clinical_document(root)
    except InputError as exc:
        return Verdict("not_cda", exc.reason)
    header = read_cda(document).header
    if schema is not None:
        issues = schema.validate(document)
        if issues:
            return Verdict(
                "schema",
                f"document does not conform to the CDA schema ({schema.path.name}): "
                f"{len(issues)} first error(s), the first at line {issues[0].line}",
                tuple(issues),
                header,
            )
    return Verdict("accepted", header=header)


def journal_entry(
    listener: str, payload: bytes, verdict: Verdict, peer: str, *, keep_payload: bool = True
) -> JournalEntry:
    """The entry to journal for ``verdict``.

    ``keep_payload=False`` (a body refused unread): no bytes stored, no dedup key.
    """
    status: Literal["received", "rejected"] = "received" if verdict.accepted else "rejected"
    digest = hashlib.sha256(payload.replace(b"\r\n", b"\n").replace(b"\r", b"\n")).hexdigest()
    header = verdict.header
    return JournalEntry(
        listener=listener,
        payload=payload if keep_payload else b"",
        received_at=datetime.now(UTC),
        status=status,
        content_type=CONTENT_TYPE,
        peer=peer[: _WIDTH["peer"]],
        dedup_key=f"{listener}|cda|{status}|sha256:{digest}" if keep_payload else None,
        control_id=(header.control_id if header else "")[: _WIDTH["control_id"]],
        message_type=(header.message_type if header else "CDA")[: _WIDTH["message_type"]],
        sending_application=(header.sending_application if header else "")[: _WIDTH["sending"]],
        sending_facility=(header.sending_facility if header else "")[: _WIDTH["sending"]],
        reject_reason="" if verdict.accepted else verdict.describe(),
    )
