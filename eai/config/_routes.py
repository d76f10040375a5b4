"""The ``routes:`` section of ``routes.yaml``: routes and their ``when`` conditions.

Touches: nothing.

Patterns are checked and compiled once, when the file is loaded: message type
patterns into a :class:`MessageTypeSet`, ``matches`` into a ``re.Pattern``,
``field`` against the HL7 path syntax of ``eai.hl7``, ``fact`` against the
fact name syntax, ``tag`` against the DICOM dictionary (``eai.config._dicom``).
Evaluating them against a message is :mod:`eai.routing`'s job.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from eai.config._base import _NAME, Model
from eai.config._dicom import Coercion, DicomTag

__all__ = ["HL7Path", "MessageTypePattern", "MessageTypeSet", "Route", "When"]

# HL7 v2: a 3-character code and trigger. The engine's other content types have their
# own "trigger": CDA^<document LOINC code> (CDA^11502-2), DICOM^<Modality> (DICOM^CT).
_MT_PATTERN = re.compile(
    r"(?P<code>\*|[A-Z0-9]{3})(?:\^(?P<trigger>\*|[A-Z0-9]{3}))?"
    r"|(?P<doc>CDA|DICOM)(?:\^(?P<doctrigger>\*|[A-Za-z0-9][A-Za-z0-9._-]{0,31}))?"
)
_MT_HELP = (
    "use ADT^A01 (exact), ADT or ADT^* (any trigger), *^A01 (any message code), "
    "CDA^11502-2 (document code), DICOM^CT (modality)"
)
_COMPARATORS = ("in", "equals", "matches", "exists")
_FACT_NAME = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"


def _check_message_type(value: str) -> str:
    if _MT_PATTERN.fullmatch(value) is None:
        raise ValueError(f"{value!r} is not a message type pattern: {_MT_HELP}")
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
            r"|(CDA|DICOM)(\^(\*|[A-Za-z0-9][A-Za-z0-9._-]{0,31}))?)$",
            "description": "MSH-9 pattern: ADT^A01, ADT^* or ADT (any trigger), *^A01; "
            "quote a leading * in YAML",
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


@dataclass(frozen=True, slots=True)
class MessageTypeSet:
    """Compiled message type patterns; ``"ADT^A01" in types`` tests an MSH-9 value.

    The value tested is ``code^trigger`` (further components, such as the
    message structure, are ignored) or a bare ``code``.
    """

    exact: frozenset[tuple[str, str]]
    codes: frozenset[str]
    triggers: frozenset[str]
    everything: bool

    @classmethod
    def of(cls, patterns: Iterable[str]) -> MessageTypeSet:
        exact: set[tuple[str, str]] = set()
        codes: set[str] = set()
        triggers: set[str] = set()
        everything = False
        for pattern in patterns:
            match = _MT_PATTERN.fullmatch(pattern)
            if match is None:
                raise ValueError(f"{pattern!r} is not a message type pattern: {_MT_HELP}")
            code = match.group("code") or match.group("doc")
            trigger = match.group("trigger") or match.group("doctrigger") or "*"
            if code == "*" and trigger == "*":
                everything = True
            elif trigger == "*":
                codes.add(code)
            elif code == "*":
                triggers.add(trigger)
            else:
                exact.add((code, trigger))
        return cls(frozenset(exact), frozenset(codes), frozenset(triggers), everything)

    def __contains__(self, message_type: object) -> bool:
        if self.everything:
            return True
        if not isinstance(message_type, str):
            return False
        code, _, rest = message_type.partition("^")
        trigger = rest.partition("^")[0]
        return (
            code in self.codes
            or (bool(trigger) and trigger in self.triggers)
            or (code, trigger) in self.exact
        )


class When(Model):
    """A condition on a message; every key given must hold (AND).

    ``field`` (an HL7 path) or ``fact`` (a routing fact of the parsed content,
    e.g. the CI-SIS ``DESTDMP`` flag) takes exactly one comparator: ``in``,
    ``equals``, ``matches`` (a regular expression searched in the value) or
    ``exists``. An absent field or fact reads as the empty string. One condition
    tests either a field or a fact; ``all``/``any``/``not`` combine conditions.

    For DICOM instances, ``tag`` (a keyword such as ``Modality`` or ``(gggg,eeee)``)
    is tested like ``field``, and ``calling_ae`` lists the accepted calling AE titles.
    """

    model_config = ConfigDict(populate_by_name=True)

    message_type: tuple[MessageTypePattern, ...] | None = Field(
        default=None,
        min_length=1,
        description="MSH-9 patterns, any of which may match",
        examples=[["ADT^A01", "ADT^A08"], ["ORU"]],
    )
    sending_application: tuple[str, ...] | None = Field(
        default=None,
        min_length=1,
        description="accepted MSH-3 values (first component), any of which may match",
        examples=[["ORBIS"]],
    )
    sending_facility: tuple[str, ...] | None = Field(
        default=None,
        min_length=1,
        description="accepted MSH-4 values (first component), any of which may match",
        examples=[["CHU-X"]],
    )
    field: HL7Path | None = Field(
        default=None,
        description="HL7 path tested by exactly one of in, equals, matches, exists",
        examples=["PV1-2", "PID-3[2].4.2", "OBX[3]-5"],
    )
    fact: str | None = Field(
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
    )
    tag: DicomTag | None = Field(
        default=None,
        description="DICOM element (keyword or (gggg,eeee)) tested by exactly one of in, "
        "equals, matches, exists; multi-valued elements read as values joined by a backslash",
        examples=["Modality", "InstitutionName", "StationName", "(0008,1030)"],
    )
    xpath: CdaXPath | None = Field(
        default=None,
        description="CDA documents: XPath 1.0 from the ClinicalDocument (prefix hl7: for "
        "urn:hl7-org:v3) whose first string value is tested by exactly one of in, equals, "
        "matches, exists",
        examples=["hl7:code/@code", "hl7:custodian//hl7:id/@extension"],
    )
    calling_ae: tuple[str, ...] | None = Field(
        default=None,
        min_length=1,
        description="DICOM: accepted calling AE titles of the sender, any of which may match",
        examples=[["CT_SCANNER_1", "PACS_CHU_X"]],
    )
    in_: tuple[str, ...] | None = Field(
        default=None,
        validation_alias="in",
        serialization_alias="in",
        min_length=1,
        description="with field or fact: the value is one of these",
        examples=[["I", "O"]],
    )
    equals: str | None = Field(
        default=None, description="with field or fact: the value is exactly this", examples=["I"]
    )
    matches: Regex | None = Field(
        default=None,
        description="with field or fact: this regular expression is found in the value",
        examples=["^75[0-9]{3}$"],
    )
    exists: bool | None = Field(
        default=None,
        description="with field or fact: true = the value is not empty, false = it is empty "
        "or absent",
        examples=[True],
    )
    all_: tuple[When, ...] | None = Field(
        default=None,
        validation_alias="all",
        serialization_alias="all",
        min_length=1,
        description="every one of these conditions holds",
    )
    any_: tuple[When, ...] | None = Field(
        default=None,
        validation_alias="any",
        serialization_alias="any",
        min_length=1,
        description="at least one of these conditions holds",
    )
    not_: When | None = Field(
        default=None,
        validation_alias="not",
        serialization_alias="not",
        description="this condition does not hold",
    )

    _message_types: MessageTypeSet | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _one_comparator(self) -> Self:
        given = [name for name in _COMPARATORS if getattr(self, _attr(name)) is not None]
        if self.xpath is not None and (
            self.field is not None or self.fact is not None or self.tag is not None
        ):
            other = "field" if self.field is not None else "fact" if self.fact else "tag"
            reason = (
                f"'{other}' and 'xpath' cannot be tested in one condition: combine them with 'all'"
            )
            raise PydanticCustomError(
                "when_predicate", "{reason}", {"reason": reason, "key": "xpath"}
            )
        if self.tag is not None and (self.field is not None or self.fact is not None):
            other = "field" if self.field is not None else "fact"
            reason = (
                f"'{other}' and 'tag' cannot be tested in one condition: combine them with 'all'"
            )
            raise PydanticCustomError(
                "when_predicate", "{reason}", {"reason": reason, "key": "tag"}
            )
        if self.field is not None and self.fact is not None:
            reason = "'field' and 'fact' cannot be tested in one condition: combine two with 'all'"
            raise PydanticCustomError(
                "when_predicate", "{reason}", {"reason": reason, "key": "fact"}
            )
        subject = (
            "xpath"
            if self.xpath is not None
            else "tag"
            if self.tag is not None
            else "field"
            if self.fact is None
            else "fact"
        )
        if self.field is None and self.fact is None and self.tag is None and self.xpath is None:
            if given:
                raise PydanticCustomError(
                    "when_predicate",
                    "{reason}",
                    {"reason": f"'{given[0]}' needs 'field'", "key": given[0]},
                )
        elif not given:
            reason = f"'{subject}' needs one of: in, equals, matches, exists"
            raise PydanticCustomError(
                "when_predicate", "{reason}", {"reason": reason, "key": subject}
            )
        elif len(given) > 1:
            reason = (
                f"'{subject}' takes exactly one of in, equals, matches, exists; "
                f"got {', '.join(given)}"
            )
            raise PydanticCustomError(
                "when_predicate", "{reason}", {"reason": reason, "key": given[1]}
            )
        return self

    def model_post_init(self, context: Any, /) -> None:
        if self.message_type is not None:
            self._message_types = MessageTypeSet.of(self.message_type)

    @property
    def message_types(self) -> MessageTypeSet | None:
        """``message_type`` compiled, or None when the key is absent."""
        return self._message_types


def _attr(key: str) -> str:
    return f"{key}_" if key in ("in", "all", "any", "not") else key


class Route(Model):
    """Send what arrives on some listeners, when a condition holds, to destinations."""

    model_config = ConfigDict(populate_by_name=True)

    name: str = Field(pattern=_NAME, description="unique route name", examples=["adt-to-dcc"])
    from_: tuple[str, ...] = Field(
        validation_alias="from",
        serialization_alias="from",
        min_length=1,
        description="names of the listeners whose messages this route considers",
        examples=[["chu-x-adt"]],
    )
    when: When | None = Field(
        default=None,
        description="condition on the message; absent = every message from these listeners",
    )
    to: tuple[str, ...] = Field(
        min_length=1, description="names of the destinations to deliver to", examples=[["dcc"]]
    )
    description: str = Field(default="", description="free text for people reading the file")
    coerce: tuple[Coercion, ...] = Field(
        default=(),
        description=(
            "DICOM marking: operations applied, in order, to the copy this route forwards "
            "(the spooled original is kept as received), e.g. {set: InstitutionName, value: "
            "CHU-X}, {set: '(0009,0010)', vr: LO, value: EAI}, {remove: PatientComments}. "
            "Only on routes whose listeners are DICOM listeners"
        ),
    )
    validate_structure: bool = Field(
        default=False,
        description=(
            "check the message against the HL7 v2 standard structure of its version "
            "(hl7apy, strict) before routing; a message that fails is not sent on this "
            "route. Slow (tens of messages/s): only for flows that need it"
        ),
    )
    map_: str | None = Field(
        default=None,
        validation_alias="map",
        serialization_alias="map",
        description=(
            "deliver the FHIR R4 Bundle (JSON) the named mapping (mappings/NAME.yaml) makes "
            "of the message instead of the message itself; `auto`: the mapping whose "
            "default_for takes the message type. A message the mapping cannot convert is "
            "not sent on this route"
        ),
        examples=["pamfr-adt", "auto"],
    )

    @model_validator(mode="after")
    def _known_mapping(self) -> Self:
        if self.map_ is None or self.map_ == "auto":
            return self
        problem = _mapping_problem(self.map_)
        if problem:
            raise PydanticCustomError("route_map", "{reason}", {"reason": problem, "key": "map"})
        return self


def _mapping_problem(name: str) -> str:
    """Why ``map: name`` cannot be used ("" when it can): unknown or broken mapping."""
    import difflib

    from eai.errors import ConfigError  # lazy: mappings load only when a route names one
    from mappings import available_mappings, load_mapping

    known = available_mappings()
    if name not in known:
        hint = difflib.get_close_matches(name, known, n=1)
        more = f" (did you mean {hint[0]!r}?)" if hint else f" (available: {', '.join(known)})"
        return f"unknown mapping {name!r}{more}"
    try:
        load_mapping(name)
    except ConfigError as exc:
        return f"mapping {name!r} has errors: {exc.issues[0]}"
    return ""
