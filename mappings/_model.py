"""The typed shape of a mapping file (``mappings/*.yaml``) and of its tests file.

Touches: nothing.

These models check the structure only (keys, types, one-of rules); what the
keys name (source paths, FHIR elements, transforms, tables, functions) is
checked when the mapping is compiled (:mod:`mappings._compile`), with the
same file:line positions. ``docs/mappings.md`` is the reference.
"""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

__all__ = [
    "Case",
    "Condition",
    "DefaultFor",
    "MappingFile",
    "ResourceSpec",
    "Rule",
    "TestsFile",
    "ValueObject",
    "ValueSpec",
]

_ID = r"^[a-z][a-z0-9_-]{0,63}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _scalar_text(value: Any) -> Any:
    """YAML scalars of a code table as text (``true`` -> ``"true"``, ``1`` -> ``"1"``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _table(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(_scalar_text(k)): _scalar_text(v) for k, v in value.items()}
    return value


Text = Annotated[str, BeforeValidator(_scalar_text)]
TableSpec = Annotated[dict[str, str], BeforeValidator(_table)]
"""A code table: ``{code: value}`` inline, or ``{file: tables/x.csv}`` (two columns)."""


class Condition(_Model):
    """A test on the source; every key given must hold (AND)."""

    path: str | None = Field(default=None, description="source path tested by a comparator")
    exists: bool | str | None = Field(
        default=None,
        description="with path: true = not empty, false = empty; alone: a source path "
        "(or a bare segment name, `exists: PID`) that must be present",
    )
    in_: list[Text] | None = Field(default=None, alias="in", description="value is one of")
    equals: Text | None = Field(default=None, description="value is exactly this")
    message_type: list[str] | None = Field(
        default=None, description="MSH-9 patterns as in routes.yaml (ADT^A40, ADT^*)"
    )
    all_: list[Condition] | None = Field(default=None, alias="all")
    any_: list[Condition] | None = Field(default=None, alias="any")
    not_: Condition | None = Field(default=None, alias="not")

    @model_validator(mode="after")
    def _shape(self) -> Self:
        comparators = [k for k in ("in_", "equals") if getattr(self, k) is not None]
        if isinstance(self.exists, bool):
            comparators.append("exists")
        if self.path is not None and len(comparators) != 1:
            raise ValueError("'path' takes exactly one of in, equals, exists (true/false)")
        if self.path is None and comparators:
            raise ValueError(f"'{comparators[0].rstrip('_')}' needs 'path'")
        keys = [
            k
            for k in ("path", "exists", "message_type", "all_", "any_", "not_")
            if getattr(self, k) is not None
        ]
        if not keys:
            raise ValueError("empty condition: use path, exists, message_type, all, any or not")
        return self


class ValueObject(_Model):
    """A value that is not a bare source path: exactly one of from, value, ref,
    refs, concat, first; ``transform`` applies to the result."""

    from_: str | list[str] | None = Field(
        default=None,
        alias="from",
        description="a source path, or a list of paths (the value is then the list of "
        "their values, for a function that needs several components)",
    )
    value: str | int | float | bool | None = Field(default=None, description="a constant")
    ref: str | None = Field(default=None, description="Reference to a resource of this mapping")
    refs: str | None = Field(
        default=None, description="References to every instance of a repeated resource"
    )
    concat: list[ValueSpec] | None = Field(default=None, description="joins non-empty parts")
    sep: str = Field(default=" ", description="separator for concat")
    first: list[ValueSpec] | None = Field(default=None, description="the first non-empty value")
    transform: list[str | dict[str, Any]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one(self) -> Self:
        given = [
            k
            for k in ("from_", "value", "ref", "refs", "concat", "first")
            if getattr(self, k) is not None
        ]
        if len(given) != 1:
            names = ", ".join(g.rstrip("_") for g in given) or "none"
            raise ValueError(
                f"a value takes exactly one of from, value, ref, refs, concat, first (got {names})"
            )
        return self


ValueSpec = str | ValueObject
"""A bare string is a source path (``PID-5.1``, ``.4.2``)."""


class Rule(_Model):
    """One unit of work on the resource being built: a ``set`` block, a registered
    function (``fn``), or nested ``rules``; optionally under ``when`` and repeated
    ``for_each`` item of the source (filtered by ``where``)."""

    when: Condition | None = None
    for_each: str | None = None
    where: Condition | None = None
    set: dict[str, ValueSpec] | None = None
    fn: str | None = None
    rules: list[Rule] | None = None

    @model_validator(mode="after")
    def _one(self) -> Self:
        given = [k for k in ("set", "fn", "rules") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a rule takes exactly one of set, fn, rules")
        if self.where is not None and self.for_each is None:
            raise ValueError("'where' filters the items of 'for_each': give for_each too")
        return self


class ResourceSpec(_Model):
    """One FHIR resource the mapping builds (or one per ``for_each`` item)."""

    id: str = Field(pattern=_ID, description="local name, for {ref: id}")
    type: str = Field(description="FHIR R4 resource type, e.g. Patient")
    profile: list[str] = Field(default_factory=list, description="meta.profile canonicals")
    when: Condition | None = None
    for_each: str | None = None
    where: Condition | None = None
    rules: list[Rule] = Field(default_factory=list)


class DefaultFor(_Model):
    """When a route names no mapping (``map: auto``), which messages this one takes."""

    message_type: list[str] | None = None
    document_code: list[str] | None = None
    template_id: list[str] | None = None
    content_template_id: list[str] | None = Field(
        default=None,
        description=(
            "CDA: templateIds looked for anywhere in the document (its own, its sections', its "
            "entries'); a document holding one is taken when no mapping takes its code, "
            "before template_id"
        ),
    )


class MappingFile(_Model):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,63}$")
    description: str = ""
    source: str = Field(description="hl7v2 | cda")
    timezone: str = Field(
        default="Europe/Paris",
        description="offset given to source times that carry none (FHIR dateTime needs one)",
    )
    default_for: DefaultFor | None = None
    tables: dict[str, TableSpec] = Field(default_factory=dict)
    resources: list[ResourceSpec] = Field(min_length=1)


class Case(_Model):
    """One test: an input file, and expected FHIRPath results on the output Bundle."""

    name: str
    input: str | None = Field(
        default=None, description="path of the input file, relative to the tests file"
    )
    message: str | None = Field(
        default=None,
        description="the input inline (HL7 v2: one segment per line; lines become CR)",
    )
    content_type: str | None = None
    expect: dict[str, Any] = Field(default_factory=dict)
    error: str | None = Field(
        default=None, description="the conversion must fail with a reason containing this"
    )

    @model_validator(mode="after")
    def _one_input(self) -> Self:
        if (self.input is None) == (self.message is None):
            raise ValueError("a case takes exactly one of input, message")
        return self


class TestsFile(_Model):
    __test__ = False  # not a pytest class

    mapping: str
    cases: list[Case] = Field(min_length=1)
