"""The ``routes:`` section of ``routes.yaml``: routes and their ``when`` conditions.

Touches: nothing.

A ``when`` key is a registered condition (:class:`eai.registry.ConditionSpec`): the
core ones (:mod:`eai.config._conditions`) are declared on :class:`When`, a plugin's
(DICOM ``tag``) are added by :func:`when_model_for`, and a plugin's route keys (DICOM
``coerce``) by :func:`route_model_for`; :func:`eai.config.config_model` uses both. Each
condition is checked and compiled into a probe once, when the file is loaded;
evaluating them against a message is :mod:`eai.routing`'s job.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar, Optional, Self

from pydantic import ConfigDict, Field, PrivateAttr, create_model, model_validator
from pydantic_core import PydanticCustomError

from eai.config._base import _NAME, Model
from eai.config._conditions import (
    CORE_CONDITIONS,
    FACT,
    FIELD,
    MESSAGE_TYPE,
    SENDING_APPLICATION,
    SENDING_FACILITY,
    XPATH,
    CdaXPath,
    HL7Path,
    MessageTypePattern,
    MessageTypeSet,
    Regex,
)
from eai.registry import ConditionSpec, Probe, RouteOptionSpec

__all__ = ["Route", "When", "route_model_for", "when_model_for"]

_COMPARATORS = ("in", "equals", "matches", "exists")


_ALL = "every one of these conditions holds"
_ANY = "at least one of these conditions holds"
_NOT = "this condition does not hold"


class When(Model):
    """A condition on a message; every key given must hold (AND).

    ``field`` (an HL7 path) or ``fact`` (a routing fact of the parsed content,
    e.g. the CI-SIS ``DESTDMP`` flag) takes exactly one comparator: ``in``,
    ``equals``, ``matches`` (a regular expression searched in the value) or
    ``exists``. An absent field or fact reads as the empty string. One condition
    tests either a field or a fact; ``all``/``any``/``not`` combine conditions.
    Plugins add keys (:func:`when_model_for`): a subject key (DICOM ``tag``) is tested
    like ``field``, any other key holds or not on its own.
    """

    model_config = ConfigDict(populate_by_name=True)

    __conditions__: ClassVar[tuple[ConditionSpec, ...]] = CORE_CONDITIONS

    message_type: tuple[MessageTypePattern, ...] | None = MESSAGE_TYPE.field
    sending_application: tuple[str, ...] | None = SENDING_APPLICATION.field
    sending_facility: tuple[str, ...] | None = SENDING_FACILITY.field
    field: HL7Path | None = FIELD.field
    fact: str | None = FACT.field
    xpath: CdaXPath | None = XPATH.field
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
        default=None, validation_alias="all", serialization_alias="all", min_length=1,
        description=_ALL,
    )  # fmt: skip
    any_: tuple[When, ...] | None = Field(
        default=None, validation_alias="any", serialization_alias="any", min_length=1,
        description=_ANY,
    )  # fmt: skip
    not_: When | None = Field(
        default=None, validation_alias="not", serialization_alias="not", description=_NOT
    )

    _message_types: MessageTypeSet | None = PrivateAttr(None)
    _compiled: _Compiled = PrivateAttr(default_factory=lambda: _Compiled(_always))
    _reads_facts: bool = PrivateAttr(False)

    @model_validator(mode="after")
    def _one_comparator(self) -> Self:
        given = [name for name in _COMPARATORS if getattr(self, _attr(name)) is not None]
        subjects = [
            spec.key
            for spec in self.__conditions__
            if spec.subject and getattr(self, spec.key) is not None
        ]
        if len(subjects) > 1:
            first, second = subjects[0], subjects[1]
            reason = (
                f"'{first}' and '{second}' cannot be tested in one condition: "
                "combine two with 'all'"
            )
            raise PydanticCustomError(
                "when_predicate", "{reason}", {"reason": reason, "key": second}
            )
        if not subjects:
            if given:
                raise PydanticCustomError(
                    "when_predicate",
                    "{reason}",
                    {"reason": f"'{given[0]}' needs 'field'", "key": given[0]},
                )
        elif not given:
            reason = f"'{subjects[0]}' needs one of: in, equals, matches, exists"
            raise PydanticCustomError(
                "when_predicate", "{reason}", {"reason": reason, "key": subjects[0]}
            )
        elif len(given) > 1:
            reason = (
                f"'{subjects[0]}' takes exactly one of in, equals, matches, exists; "
                f"got {', '.join(given)}"
            )
            raise PydanticCustomError(
                "when_predicate", "{reason}", {"reason": reason, "key": given[1]}
            )
        return self

    def model_post_init(self, context: Any, /) -> None:
        if self.message_type is not None:
            self._message_types = MessageTypeSet.of(self.message_type)
        checks: list[Probe] = []
        reads_facts = False
        for spec in self.__conditions__:
            value = getattr(self, spec.key)
            if value is None:
                continue
            reads_facts = reads_facts or spec.reads_facts
            probe = spec.compile(value)
            checks.append(self._compared(probe) if spec.subject else probe)
        if self.all_ is not None:
            checks.append(_every(tuple(w.matcher for w in self.all_)))
        if self.any_ is not None:
            checks.append(_some(tuple(w.matcher for w in self.any_)))
        if self.not_ is not None:
            checks.append(_negated(self.not_.matcher))
        nested = [*(self.all_ or ()), *(self.any_ or ()), *([self.not_] if self.not_ else [])]
        self._compiled = _Compiled(_every(tuple(checks)))
        self._reads_facts = reads_facts or any(w.reads_facts for w in nested)

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        private = dict(state.get("__pydantic_private__") or {})
        private.pop("_compiled", None)  # closures: compiled again on unpickling
        return {**state, "__pydantic_private__": private}

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        self.model_post_init(None)

    def _compared(self, read: Probe) -> Probe:
        """``read`` tested by the one comparator given (the validator guarantees one)."""
        if self.in_ is not None:
            accepted = frozenset(self.in_)
            return lambda message, facts: read(message, facts) in accepted
        if self.equals is not None:
            expected = self.equals
            return lambda message, facts: read(message, facts) == expected
        if self.matches is not None:
            search = self.matches.search
            return lambda message, facts: search(read(message, facts)) is not None
        if self.exists:
            return lambda message, facts: read(message, facts) != ""
        return lambda message, facts: read(message, facts) == ""

    @property
    def message_types(self) -> MessageTypeSet | None:
        """``message_type`` compiled, or None when the key is absent."""
        return self._message_types

    @property
    def matcher(self) -> Probe:
        """The whole condition compiled: ``matcher(message, facts)`` is True when every key
        given holds (nested ``all``/``any``/``not`` included)."""
        compiled: _Compiled = self.__pydantic_private__["_compiled"]  # type: ignore[index]
        return compiled.matcher  # not through BaseModel.__getattr__: routing calls this a lot

    @property
    def reads_facts(self) -> bool:
        """True when this condition or one nested in it reads a routing fact."""
        return self._reads_facts


def _always(message: Any, facts: Any) -> bool:
    return True


class _Compiled:
    """A :class:`When` compiled; derived from its fields, so any two compare equal (the
    conditions' equality is their fields')."""

    __slots__ = ("matcher",)

    def __init__(self, matcher: Probe) -> None:
        self.matcher = matcher

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Compiled)

    def __hash__(self) -> int:
        return 0


def _every(checks: tuple[Probe, ...]) -> Probe:
    if not checks:
        return _always
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda message, facts: bool(first(message, facts) and second(message, facts))

    def every(message: Any, facts: Any) -> bool:
        for check in checks:
            if not check(message, facts):
                return False
        return True

    return every


def _some(checks: tuple[Probe, ...]) -> Probe:
    def some(message: Any, facts: Any) -> bool:
        for check in checks:
            if check(message, facts):
                return True
        return False

    return some


def _negated(check: Probe) -> Probe:
    return lambda message, facts: not check(message, facts)


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
    business_acks: str | None = Field(
        default=None,
        description=(
            "the destination (declared in destinations) where this route's deliveries send "
            "the establishment's answers about them: the business acknowledgements "
            "(CI-SIS ZAM^Z01 after a DMP publication, ZAM^Z02/Z03 for MSSante) when the "
            "message asks for them (ACK_RECEPTION = Y). Per listener: the route's `from`; "
            "per sending facility: a route per facility (`when: {sending_facility: ...}`)"
        ),
        examples=["lab-return"],
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


@functools.lru_cache(maxsize=16)
def when_model_for(conditions: tuple[ConditionSpec, ...] = ()) -> type[When]:
    """:class:`When` with the plugin ``conditions`` (not core keys) added, nested
    conditions (``all``/``any``/``not``) included; :class:`When` itself without any."""
    extra = [spec for spec in conditions if spec.key not in When.model_fields]
    if not extra:
        return When
    fields: dict[str, Any] = {spec.key: (_optional(spec.annotation), spec.field) for spec in extra}
    nested: Any = "When"  # resolved by pydantic to the model being built: nested keys too
    fields["all_"] = (_optional(tuple[nested, ...]), When.model_fields["all_"])
    fields["any_"] = (_optional(tuple[nested, ...]), When.model_fields["any_"])
    fields["not_"] = (_optional(nested), When.model_fields["not_"])
    model = create_model("When", __base__=When, __module__=__name__, **fields)
    model.__conditions__ = (*When.__conditions__, *extra)
    return model


@functools.lru_cache(maxsize=16)
def route_model_for(
    conditions: tuple[ConditionSpec, ...] = (), options: tuple[RouteOptionSpec, ...] = ()
) -> type[Route]:
    """:class:`Route` whose ``when`` takes the plugin ``conditions`` and which has the
    plugin route keys ``options`` (DICOM ``coerce``); :class:`Route` itself without any."""
    when = when_model_for(conditions)
    if when is When and not options:
        return Route
    fields: dict[str, Any] = {spec.key: (spec.annotation, spec.field) for spec in options}
    fields["when"] = (_optional(when), Route.model_fields["when"])
    return create_model("Route", __base__=Route, __module__=__name__, **fields)


def _optional(annotation: Any) -> Any:
    return Optional[annotation]  # noqa: UP045 - X | None needs types, this may be a string
