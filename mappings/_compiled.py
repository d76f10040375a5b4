"""A compiled mapping: closures that build a FHIR Bundle from one source document.

Touches: nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eai.message_types import MessageTypeSet
from mappings._context import MappingContext
from mappings._model import Condition
from mappings._source import ItemsReader, SourceKind

__all__ = [
    "Action",
    "CompiledMapping",
    "CompiledResource",
    "Cond",
    "Value",
    "combined",
    "comparison",
    "guarded",
]

Value = Callable[[MappingContext], Any]
Cond = Callable[[MappingContext], bool]
Action = Callable[[MappingContext], None]


@dataclass(frozen=True, slots=True)
class CompiledResource:
    """One resource of a mapping: when it exists, how many, the rules that build it."""

    id: str
    type: str
    profile: tuple[str, ...]
    when: Cond | None
    items: ItemsReader | None
    item_kind: Any
    where: Cond | None
    rules: tuple[Action, ...]


@dataclass(frozen=True)
class CompiledMapping:
    """A loaded mapping, ready to run."""

    name: str
    description: str
    path: Path
    source: SourceKind
    tables: dict[str, dict[str, str]]
    message_types: MessageTypeSet | None
    document_codes: frozenset[str]
    template_ids: tuple[str, ...]
    resources: tuple[CompiledResource, ...] = field(repr=False)
    message_type_patterns: tuple[str, ...] = ()
    content_template_ids: tuple[str, ...] = ()
    """CDA: templateIds anywhere in a document that make ``map: auto`` choose this mapping."""

    def run(self, document: Any) -> dict[str, Any]:
        """The FHIR ``Bundle`` (type ``collection``) for ``document``, as JSON.

        Raises :class:`MappingFailure` (with the rule's file:line) when a step fails.
        """
        ctx = MappingContext(self.name, self.source, document, self.tables)
        planned: list[tuple[CompiledResource, dict[str, Any], Any]] = []
        for spec in self.resources:
            if spec.when is not None and not spec.when(ctx):
                continue
            if spec.items is None:
                planned.append((spec, ctx.new_instance(spec.id, spec.type), None))
                continue
            for item in spec.items(document, None):
                if spec.where is not None:
                    with ctx.at(item, spec.item_kind):
                        if not spec.where(ctx):
                            continue
                planned.append((spec, ctx.new_instance(spec.id, spec.type), item))
        entries = []
        for spec, resource, item in planned:
            if spec.profile:
                resource["meta"] = {"profile": list(spec.profile)}
            ctx.resource = resource
            with ctx.at(item, spec.item_kind if spec.items is not None else None):
                for rule in spec.rules:
                    rule(ctx)
            entries.append({"fullUrl": ctx.urls[id(resource)], "resource": resource})
        return {"resourceType": "Bundle", "type": "collection", "entry": entries}

    def takes(self, message_type: str) -> bool:
        """True when ``default_for.message_type`` (or document_code) covers ``message_type``."""
        if self.message_types is not None and message_type in self.message_types:
            return True
        code, _, rest = message_type.partition("^")
        return code == "CDA" and rest in self.document_codes


def combined(key: str, members: tuple[Cond, ...]) -> Cond:
    if key == "all":
        return lambda ctx: all(t(ctx) for t in members)
    return lambda ctx: any(t(ctx) for t in members)


def comparison(read: Value, spec: Condition) -> Cond:
    if spec.in_ is not None:
        accepted = frozenset(spec.in_)
        return lambda ctx: read(ctx) in accepted
    if spec.equals is not None:
        expected = spec.equals
        return lambda ctx: read(ctx) == expected
    wanted = bool(spec.exists)
    return lambda ctx: bool(read(ctx)) is wanted


def guarded(
    action: Action,
    when: Cond | None,
    items: ItemsReader | None,
    kind: Any,
    where: Cond | None,
) -> Action:
    if items is None:
        if when is None:
            return action

        def conditional(ctx: MappingContext) -> None:
            if when(ctx):
                action(ctx)

        return conditional

    def repeated(ctx: MappingContext) -> None:
        if when is not None and not when(ctx):
            return
        found: Sequence[Any] = items(ctx.document, ctx.item)
        if not found:
            return
        saved = ctx.item, ctx.item_kind
        try:
            for item in found:
                ctx.item, ctx.item_kind = item, kind
                if where is None or where(ctx):
                    action(ctx)
        finally:
            ctx.item, ctx.item_kind = saved

    return repeated
