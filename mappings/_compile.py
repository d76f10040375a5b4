"""Compile a mapping file into closures: every name it uses resolved once, every problem listed.

Touches: files (code tables named ``{file: ...}``, read at load time).

Everything a mapping names is resolved here, once: source paths (by the
source kind), FHIR element paths (against the R4B models), transforms,
tables, functions, resource ids. Each problem is a ``file:line:column``
issue; a mapping with any is refused as a whole (:class:`ConfigError`).

Running (:meth:`CompiledMapping.run`) is then a walk over closures: decide
which resources exist (``when``, resource-level ``for_each``) and give each a
deterministic ``urn:uuid``, then build them rule by rule in file order; the
compiled form and its run are in :mod:`mappings._compiled`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from eai.errors import ConfigError, ConfigIssue
from eai.message_types import MessageTypeSet
from mappings import _registry
from mappings._compiled import (
    Action,
    CompiledMapping,
    CompiledResource,
    Cond,
    Value,
    combined,
    comparison,
    guarded,
)
from mappings._context import MappingContext, MappingFailure
from mappings._fhirmodel import resource_model
from mappings._fhirpath import Target, compile_target
from mappings._model import Condition, MappingFile, ResourceSpec, Rule, ValueObject, ValueSpec
from mappings._source import ItemsReader, SourceKind, source_kind, source_kinds
from mappings._transforms import Transform, compile_transform, load_table
from mappings._yamlpos import Loc, YamlDoc

__all__ = ["CompiledMapping", "compile_mapping"]

_EMPTY: tuple[Any, ...] = ("", None, [])


def _empty(value: Any) -> bool:
    """ "" / None / [] (a constant ``false`` or ``0`` is a value)."""
    return value is None or value == "" or (type(value) is list and not value)


class _Compiler:
    """Collects issues while compiling; positions come from the YAML nodes."""

    def __init__(self, doc: YamlDoc, spec: MappingFile, source: SourceKind, base: Path) -> None:
        self.doc = doc
        self.spec = spec
        self.source = source
        self.base = base
        self.issues: list[ConfigIssue] = []
        self.tables: dict[str, dict[str, str]] = {}
        self.ids = {r.id: r for r in spec.resources}
        self.zone = ZoneInfo("UTC")

    def fail(self, loc: Loc, message: str, *, key: bool = False) -> None:
        self.issues.append(self.doc.issue(loc, message, key=key))

    def where(self, loc: Loc) -> str:
        line, _ = self.doc.position(loc)
        return f"{Path(self.doc.filename).name}:{line}"

    # -- values --------------------------------------------------------------

    def source_value(self, path: str, kind: Any, loc: Loc) -> Value | None:
        try:
            read = self.source.compile_value(path, kind)
        except ValueError as exc:
            self.fail(loc, str(exc))
            return None
        return lambda ctx: read(ctx.document, ctx.item)

    def value(self, spec: ValueSpec, kind: Any, loc: Loc) -> Value | None:
        if isinstance(spec, str):
            return self.source_value(spec, kind, loc)
        base = self._base_value(spec, kind, loc)
        if base is None:
            return None
        transforms: list[Transform] = []
        for index, item in enumerate(spec.transform):
            try:
                transforms.append(compile_transform(item, self.tables, self.zone))
            except ValueError as exc:
                self.fail((*loc, "transform", index), str(exc))
        if not transforms:
            return base
        label = self.where(loc)
        if isinstance(spec.from_, str):
            label = f"{label}: {spec.from_}"
        chain = tuple(transforms)

        def transformed(ctx: MappingContext) -> Any:
            value = base(ctx)
            try:
                for transform in chain:
                    value = transform(value)
            except ValueError as exc:
                raise MappingFailure(label, str(exc)) from None
            return value

        return transformed

    def _base_value(self, spec: ValueObject, kind: Any, loc: Loc) -> Value | None:
        if spec.from_ is not None:
            if isinstance(spec.from_, str):
                return self.source_value(spec.from_, kind, (*loc, "from"))
            parts = [
                self.source_value(p, kind, (*loc, "from", i)) for i, p in enumerate(spec.from_)
            ]
            if any(p is None for p in parts):
                return None
            readers = tuple(p for p in parts if p is not None)
            return lambda ctx: [r(ctx) for r in readers]
        if spec.value is not None:
            constant = spec.value
            return lambda ctx: constant
        if spec.ref is not None or spec.refs is not None:
            target = spec.ref if spec.ref is not None else spec.refs
            assert target is not None
            if target not in self.ids:
                known = ", ".join(sorted(self.ids))
                self.fail(
                    (*loc, "ref" if spec.ref else "refs"), f"no resource {target!r} ({known})"
                )
                return None
            if spec.ref is not None:
                return lambda ctx: ctx.ref(target)
            return lambda ctx: ctx.refs(target)
        group = spec.concat if spec.concat is not None else spec.first
        key = "concat" if spec.concat is not None else "first"
        assert group is not None
        parts = [self.value(p, kind, (*loc, key, i)) for i, p in enumerate(group)]
        if any(p is None for p in parts):
            return None
        members = tuple(p for p in parts if p is not None)
        if key == "first":

            def first(ctx: MappingContext) -> Any:
                for member in members:
                    value = member(ctx)
                    if value not in _EMPTY:
                        return value
                return ""

            return first
        sep = spec.sep

        def concat(ctx: MappingContext) -> str:
            texts: list[str] = []
            for member in members:
                value = member(ctx)
                for v in value if isinstance(value, list) else [value]:
                    if v not in _EMPTY:
                        texts.append(str(v))
            return sep.join(texts)

        return concat

    # -- conditions ----------------------------------------------------------

    def condition(self, spec: Condition, kind: Any, loc: Loc) -> Cond | None:
        tests: list[Cond] = []
        if spec.path is not None:
            read = self.source_value(spec.path, kind, (*loc, "path"))
            if read is not None:
                tests.append(comparison(read, spec))
        elif isinstance(spec.exists, str):
            try:
                exists = self.source.compile_exists(spec.exists, kind)
            except ValueError as exc:
                self.fail((*loc, "exists"), str(exc))
            else:
                tests.append(lambda ctx: exists(ctx.document, ctx.item))
        if spec.message_type is not None:
            try:
                types = MessageTypeSet.of(spec.message_type)
            except ValueError as exc:
                self.fail((*loc, "message_type"), str(exc))
            else:
                tests.append(lambda ctx: ctx.message_type in types)
        for key, group in (("all", spec.all_), ("any", spec.any_)):
            if group is None:
                continue
            subs = [self.condition(c, kind, (*loc, key, i)) for i, c in enumerate(group)]
            tests.append(combined(key, tuple(s for s in subs if s is not None)))
        if spec.not_ is not None:
            inner = self.condition(spec.not_, kind, (*loc, "not"))
            if inner is not None:
                negated = inner
                tests.append(lambda ctx: not negated(ctx))
        if len(tests) == 1:
            return tests[0]
        checks = tuple(tests)
        return lambda ctx: all(t(ctx) for t in checks)

    # -- rules ---------------------------------------------------------------

    def rule(self, spec: Rule, resource_type: str, kind: Any, loc: Loc) -> Action | None:
        when = self.condition(spec.when, kind, (*loc, "when")) if spec.when else None
        items: ItemsReader | None = None
        inner_kind = kind
        if spec.for_each is not None:
            try:
                items, inner_kind = self.source.compile_items(spec.for_each, kind)
            except ValueError as exc:
                self.fail((*loc, "for_each"), str(exc))
                return None
        where = self.condition(spec.where, inner_kind, (*loc, "where")) if spec.where else None
        action: Action | None
        if spec.set is not None:
            action = self.block(spec.set, resource_type, inner_kind, (*loc, "set"))
        elif spec.fn is not None:
            action = self.function(spec.fn, (*loc, "fn"))
        else:
            subs = [
                self.rule(r, resource_type, inner_kind, (*loc, "rules", i))
                for i, r in enumerate(spec.rules or [])
            ]
            nested = tuple(s for s in subs if s is not None)

            def run_nested(ctx: MappingContext) -> None:
                for sub in nested:
                    sub(ctx)

            action = run_nested
        if action is None:
            return None
        return guarded(action, when, items, inner_kind, where)

    def function(self, name: str, loc: Loc) -> Action | None:
        found = _registry.lookup(name)
        if found is None:
            self.fail(loc, f"unknown function {name!r}: register it with @mapping_function")
            return None
        if found.kind != "rule":
            self.fail(loc, f"{name!r} is a transform (str -> str): use it as {{fn: {name}}}")
            return None
        function = found.function
        label = self.where(loc)

        def call(ctx: MappingContext) -> None:
            try:
                function(ctx)
            except MappingFailure:
                raise
            except ValueError as exc:
                raise MappingFailure(label, f"{name}: {exc}") from None

        return call

    def block(
        self, entries: dict[str, ValueSpec], resource_type: str, kind: Any, loc: Loc
    ) -> Action | None:
        model = resource_model(resource_type)
        compiled: list[tuple[Target, Value, str]] = []
        for path, spec in entries.items():
            try:
                target = compile_target(model, path)
            except ValueError as exc:
                self.fail((*loc, path), str(exc), key=True)
                continue
            value = self.value(spec, kind, (*loc, path))
            if value is not None:
                compiled.append((target, value, self.where((*loc, path))))
        if len(compiled) != len(entries):
            return None
        steps = tuple(compiled)

        def run_block(ctx: MappingContext) -> None:
            values = [value(ctx) for _, value, _ in steps]
            if all(_empty(v) for v in values):
                return
            pending: set[str] = set()
            for (target, _, label), value in zip(steps, values, strict=True):
                if _empty(value):
                    target.mark_pending(pending)
                    continue
                try:
                    target.write(ctx.resource, value, pending)
                except ValueError as exc:
                    raise MappingFailure(label, f"{target.path}: {exc}") from None

        return run_block

    # -- the file ------------------------------------------------------------

    def resource(self, spec: ResourceSpec, loc: Loc) -> CompiledResource | None:
        try:
            resource_model(spec.type)
        except ValueError as exc:
            self.fail((*loc, "type"), str(exc))
            return None
        when = self.condition(spec.when, None, (*loc, "when")) if spec.when else None
        items: ItemsReader | None = None
        kind: Any = None
        if spec.for_each is not None:
            try:
                items, kind = self.source.compile_items(spec.for_each, None)
            except ValueError as exc:
                self.fail((*loc, "for_each"), str(exc))
        elif spec.where is not None:
            self.fail((*loc, "where"), "'where' filters the items of 'for_each': give for_each")
        where = self.condition(spec.where, kind, (*loc, "where")) if spec.where else None
        rules = [
            self.rule(r, spec.type, kind, (*loc, "rules", i)) for i, r in enumerate(spec.rules)
        ]
        return CompiledResource(
            spec.id,
            spec.type,
            tuple(spec.profile),
            when,
            items,
            kind,
            where,
            tuple(r for r in rules if r is not None),
        )

    def compile(self) -> CompiledMapping | None:
        spec = self.spec
        try:
            self.zone = ZoneInfo(spec.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            self.fail(("timezone",), f"unknown time zone {spec.timezone!r} (e.g. Europe/Paris)")
        for name, table in spec.tables.items():
            try:
                self.tables[name] = load_table(table, self.base)
            except ValueError as exc:
                self.fail(("tables", name), str(exc))
        seen: dict[str, int] = {}
        for index, resource in enumerate(spec.resources):
            if resource.id in seen:
                self.fail(
                    ("resources", index, "id"), f"duplicate id (resources[{seen[resource.id]}])"
                )
            seen.setdefault(resource.id, index)
        resources = [self.resource(r, ("resources", i)) for i, r in enumerate(spec.resources)]
        types: MessageTypeSet | None = None
        default = spec.default_for
        if default is not None and default.message_type is not None:
            try:
                types = MessageTypeSet.of(default.message_type)
            except ValueError as exc:
                self.fail(("default_for", "message_type"), str(exc))
        if self.issues:
            return None
        return CompiledMapping(
            spec.name,
            spec.description,
            Path(self.doc.filename),
            self.source,
            self.tables,
            types,
            frozenset(default.document_code or []) if default else frozenset(),
            tuple(default.template_id or []) if default else (),
            tuple(r for r in resources if r is not None),
            tuple(default.message_type or []) if default else (),
            tuple(default.content_template_id or []) if default else (),
        )


_NAME = re.compile(r"^[a-z][a-z0-9-]{0,63}$")


def compile_mapping(doc: YamlDoc, spec: MappingFile, base: Path) -> CompiledMapping:
    """Compile a validated mapping file; ConfigError lists every problem with its position."""
    source = source_kind(spec.source)
    if source is None:
        known = ", ".join(source_kinds())
        raise ConfigError([doc.issue(("source",), f"unknown source {spec.source!r} ({known})")])
    stem = Path(doc.filename).name.removesuffix(".yaml")
    issues: list[ConfigIssue] = []
    if _NAME.match(stem) and spec.name != stem:
        issues.append(doc.issue(("name",), f"name must be the file name without .yaml ({stem!r})"))
    compiler = _Compiler(doc, spec, source, base)
    compiled = compiler.compile()
    issues += compiler.issues
    if issues or compiled is None:
        raise ConfigError(sorted(issues, key=lambda i: (i.line, i.column)))
    return compiled
