"""The core route conditions (``when:`` keys) and the value types they are written in.

Touches: nothing.

Each core key is a :class:`eai.registry.ConditionSpec`, registered here like a
plugin's (DICOM ``tag``): ``message_type``, ``sending_application``,
``sending_facility`` (header tests), ``field`` (an HL7 path), ``fact`` (a routing
fact of the parsed content) and ``xpath`` (CDA documents: CDA is core content, read
by ``eai._cda_content`` and embedded in CI-SIS HL7 messages, so its condition is
core too). ``message_type`` patterns are HL7 v2's or ``KIND^trigger`` for a
registered kind of content (:class:`eai.registry.MessageKindSpec`: ``CDA`` here);
their grammar and :class:`MessageTypeSet` are :mod:`eai.message_types`' (a base module
that :mod:`mappings` uses too), re-exported here.
Patterns are checked and compiled once, when the file is loaded;
:class:`eai.config.When` declares these keys and compiles their probes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

from eai import registry
from eai.message_types import MessageKindSpec, MessageTypeSet, match_pattern
from eai.registry import ConditionSpec, Probe

if TYPE_CHECKING:
    from eai.routing import Routable

__all__ = [
    "CORE_CONDITIONS",
    "CdaXPath",
    "HL7Path",
    "MessageTypePattern",
    "MessageTypeSet",
    "Regex",
]

CDA_KIND = MessageKindSpec("CDA", "document code", "CDA^11502-2")
registry.register_message_kind(CDA_KIND)


_FACT_NAME = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"


def _check_message_type(value: str) -> str:
    match_pattern(value)
    return value


def _check_hl7_path(value: str) -> str:
    from eai.hl7 import validate_path  # lazy: the config model loads without the HL7 reader

    validate_path(value)
    return value


def _compile_regex(value: Any) -> Any:
    if not isinstance(value, str):
        return value  # pydantic reports the wrong type
    try:
        return re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None


_XPATH_NS = {
    "hl7": "urn:hl7-org:v3",
    "sdtc": "urn:hl7-org:sdtc",
    "lab": "urn:oid:1.3.6.1.4.1.19376.1.3.2",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
}


def _check_xpath(value: str) -> str:
    from lxml import etree  # lazy: only configs with xpath conditions need lxml here

    try:
        etree.XPath(value, namespaces=_XPATH_NS)
    except etree.XPathSyntaxError as exc:
        raise ValueError(f"invalid XPath: {exc}") from None
    return value


CdaXPath = Annotated[
    str,
    AfterValidator(_check_xpath),
    WithJsonSchema({"type": "string", "description": "XPath 1.0, prefix hl7: = urn:hl7-org:v3"}),
]

MessageTypePattern = Annotated[
    str,
    AfterValidator(_check_message_type),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^((\*|[A-Z0-9]{3})(\^(\*|[A-Z0-9]{3}))?"
            r"|([A-Z][A-Z0-9]{2,15})(\^(\*|[A-Za-z0-9][A-Za-z0-9._-]{0,31}))?)$",
            "description": "MSH-9 pattern: ADT^A01, ADT^* or ADT (any trigger), *^A01; "
            "another content kind and its trigger: CDA^11502-2; quote a leading * in YAML",
            "examples": ["ADT^A01", "ADT^*", "ORU", "'*^A01'"],
        }
    ),
]
"""An MSH-9 pattern: ``ADT^A01``, ``ADT^*`` / ``ADT`` (any trigger), ``*^A01``."""

HL7Path = Annotated[
    str,
    AfterValidator(_check_hl7_path),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^[A-Z0-9]{3}(\[[1-9][0-9]*\])?-[1-9][0-9]*(\[[1-9][0-9]*\])?"
            r"(\.[1-9][0-9]*){0,2}$",
            "description": "SEG[occ]-field[rep].component.subcomponent",
            "examples": ["PV1-2", "PID-3[2].4.2", "OBX[3]-5"],
        }
    ),
]
"""An HL7 v2 field path, as ``eai.hl7.validate_path`` accepts it."""

Regex = Annotated[
    re.Pattern[str],
    BeforeValidator(_compile_regex),
    WithJsonSchema({"type": "string", "format": "regex"}),
]


def _message_type(patterns: tuple[str, ...]) -> Probe:
    types = MessageTypeSet.of(patterns)

    def probe(message: Routable, facts: Mapping[str, str]) -> bool:
        return message.header.message_type in types

    return probe


def _sending_application(names: tuple[str, ...]) -> Probe:
    accepted = frozenset(names)

    def probe(message: Routable, facts: Mapping[str, str]) -> bool:
        return message.header.sending_application in accepted

    return probe


def _sending_facility(names: tuple[str, ...]) -> Probe:
    accepted = frozenset(names)

    def probe(message: Routable, facts: Mapping[str, str]) -> bool:
        return message.header.sending_facility in accepted

    return probe


def _field(path: str) -> Probe:
    def probe(message: Routable, facts: Mapping[str, str]) -> str:
        return message.get(path)

    return probe


def _fact(name: str) -> Probe:
    def probe(message: Routable, facts: Mapping[str, str]) -> str:
        return facts.get(name, "")

    return probe


def _xpath(path: str) -> Probe:
    def probe(message: Routable, facts: Mapping[str, str]) -> str:
        try:
            return message.get(path)  # a CDA document's get() evaluates XPath
        except ValueError:
            return ""  # an XPath read on content of another type is absent, not an error

    return probe


MESSAGE_TYPE = ConditionSpec(
    key="message_type",
    annotation=tuple[MessageTypePattern, ...],
    field=Field(
        default=None,
        min_length=1,
        description="MSH-9 patterns, any of which may match",
        examples=[["ADT^A01", "ADT^A08"], ["ORU"]],
    ),
    compile=_message_type,
    summary="the message type (MSH-9, CDA^code, ...) matches one of these patterns",
)
SENDING_APPLICATION = ConditionSpec(
    key="sending_application",
    annotation=tuple[str, ...],
    field=Field(
        default=None,
        min_length=1,
        description="accepted MSH-3 values (first component), any of which may match",
        examples=[["ORBIS"]],
    ),
    compile=_sending_application,
    summary="the sending application is one of these",
)
SENDING_FACILITY = ConditionSpec(
    key="sending_facility",
    annotation=tuple[str, ...],
    field=Field(
        default=None,
        min_length=1,
        description="accepted MSH-4 values (first component), any of which may match",
        examples=[["CHU-X"]],
    ),
    compile=_sending_facility,
    summary="the sending facility is one of these",
)
FIELD = ConditionSpec(
    key="field",
    annotation=HL7Path,
    field=Field(
        default=None,
        description="HL7 path tested by exactly one of in, equals, matches, exists",
        examples=["PV1-2", "PID-3[2].4.2", "OBX[3]-5"],
    ),
    compile=_field,
    subject=True,
    summary="the value at an HL7 path",
)
FACT = ConditionSpec(
    key="fact",
    annotation=str,
    field=Field(
        default=None,
        pattern=_FACT_NAME,
        description=(
            "routing fact tested by exactly one of in, equals, matches, exists; facts come "
            "from the parsed content (CI-SIS CDA in HL7 v2: DESTDMP, DESTMSSANTEPS, "
            "DESTMSSANTEPAT, MASQUE_PS, INVISIBLE_PATIENT, ... = Y/N; document_action = "
            "new/replace/delete; document_code; mss_recipients = count; "
            "mss_recipient_kinds; PAM FR ZFA: DMP_OPPOSITION = Y/N/NA, "
            "DMP_CONSULTATION_CONSENT = Y/N/NA, DMP_STATUS). Not with field in the same "
            "condition: use all"
        ),
        examples=["DESTDMP", "document_action", "document_code", "DMP_OPPOSITION"],
    ),
    compile=_fact,
    subject=True,
    reads_facts=True,
    summary="a routing fact of the parsed content",
)
XPATH = ConditionSpec(
    key="xpath",
    annotation=CdaXPath,
    field=Field(
        default=None,
        description="CDA documents: XPath 1.0 from the ClinicalDocument (prefix hl7: for "
        "urn:hl7-org:v3) whose first string value is tested by exactly one of in, equals, "
        "matches, exists",
        examples=["hl7:code/@code", "hl7:custodian//hl7:id/@extension"],
    ),
    compile=_xpath,
    subject=True,
    summary="the first string value of an XPath in a CDA document",
)

CORE_CONDITIONS = (
    MESSAGE_TYPE,
    SENDING_APPLICATION,
    SENDING_FACILITY,
    FIELD,
    FACT,
    XPATH,
)
"""The ``when:`` keys of the core, in evaluation order (cheap header tests first)."""

for _spec in CORE_CONDITIONS:
    registry.register_condition(_spec)
