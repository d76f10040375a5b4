"""Turns pydantic validation errors and check results into positioned findings.

Touches: nothing.

A pydantic ``loc`` such as ``('listeners', 0, 'mllp', 'port')`` is walked
through the model types and the YAML node tree side by side: the types tell
which entries are discriminator tags (``'mllp'``, no node of their own) and
which keys a mapping accepts (for "did you mean"), the nodes give the marks.
"""

from __future__ import annotations

import difflib
import types
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from yaml.nodes import MappingNode, Node, SequenceNode

from eai.config._yaml import Finding, Loc, format_path, mapping_item, position

__all__ = ["Located", "findings_from_validation", "locate"]

_KIND = {"listeners": "listener", "destinations": "destination"}
_FRIENDLY = {
    "tuple_type": "expected a list",
    "list_type": "expected a list",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "dict_type": "expected a mapping",
    "missing": "required key is missing",
    "extra_forbidden": "unknown key",
}


@dataclass(frozen=True, slots=True)
class Located:
    """Where a ``loc`` lands: the path shown (tags removed), the node to point at
    (and its key node in the parent mapping), whether the whole path was found,
    the parent node and the model expected there (if known)."""

    path: Loc
    node: Node
    key_node: Node | None
    found: bool
    parent: Node | None
    model: type[BaseModel] | None


def locate(root: Node, loc: Loc, model: Any) -> Located:
    """Follow ``loc`` from ``root``, typed by ``model`` (the root model class)."""
    node: Node = root
    key_node: Node | None = None
    parent: Node | None = None
    path: Loc = ()
    tp: Any = model
    parent_model: type[BaseModel] | None = None
    for index, part in enumerate(loc):
        tp, discriminator = _unwrap(tp)
        if discriminator is not None and isinstance(part, str):
            member = _member(tp, discriminator, part)
            if member is not None:
                tp = member
                continue
            tp = None
        if tp is None and _is_untyped_tag(node, part):
            continue
        parent_model = tp if _is_model(tp) else None
        item: tuple[Node | None, Node] | None = None
        if isinstance(node, MappingNode) and isinstance(part, str):
            item = mapping_item(node, part)
        elif isinstance(node, SequenceNode) and isinstance(part, int) and part < len(node.value):
            item = (None, node.value[part])
        if item is None:
            return Located((*path, *_untagged(loc[index:], tp)), node, None, False, parent, None)
        tp = _child_type(tp, part)
        path = (*path, part)
        parent, (key_node, node) = node, item
    return Located(path, node, key_node, True, parent, parent_model)


def _untagged(rest: Loc, tp: Any) -> Loc:
    """``rest`` without the discriminator tags the types reveal."""
    out: list[str | int] = []
    for part in rest:
        tp, discriminator = _unwrap(tp)
        if discriminator is not None and isinstance(part, str):
            tp = _member(tp, discriminator, part)
            continue
        out.append(part)
        tp = _child_type(tp, part)
    return tuple(out)


def _is_untyped_tag(node: Node, part: str | int) -> bool:
    """Without type information, a loc entry equal to the mapping's ``type`` value
    that is not one of its keys is a discriminator tag."""
    if not isinstance(node, MappingNode) or not isinstance(part, str):
        return False
    if mapping_item(node, part) is not None:
        return False
    found = mapping_item(node, "type")
    return found is not None and getattr(found[1], "value", None) == part


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _unwrap(tp: Any) -> tuple[Any, str | None]:
    """Strip ``Annotated`` and ``| None``; return the type and its discriminator."""
    discriminator: str | None = None
    while tp is not None:
        origin = get_origin(tp)
        if origin is Annotated:
            args = get_args(tp)
            tp = args[0]
            for meta in args[1:]:
                if isinstance(meta, FieldInfo) and isinstance(meta.discriminator, str):
                    discriminator = meta.discriminator
            continue
        if origin is Union or origin is types.UnionType:
            members = [a for a in get_args(tp) if a is not type(None)]
            if len(members) == 1:
                tp = members[0]
                continue
        break
    return tp, discriminator


def _member(tp: Any, discriminator: str, tag: str) -> Any:
    """The member of a discriminated union whose tag is ``tag``."""
    origin = get_origin(tp)
    members = get_args(tp) if origin is Union or origin is types.UnionType else (tp,)
    for member in members:
        if _is_model(member):
            field = member.model_fields.get(discriminator)
            if field is not None and get_origin(field.annotation) is Literal:
                if tag in get_args(field.annotation):
                    return member
    return None


def _child_type(tp: Any, part: str | int) -> Any:
    """The type found under ``part`` in a value of type ``tp`` (None: unknown)."""
    if tp is None:
        return None
    if _is_model(tp) and isinstance(part, str):
        for name, field in tp.model_fields.items():
            if _key(name, field) == part:
                if isinstance(field.discriminator, str):
                    return Annotated[field.annotation, Field(discriminator=field.discriminator)]
                return field.annotation
        return None
    origin = get_origin(tp)
    if origin in (tuple, list) and isinstance(part, int):
        args = get_args(tp)
        return args[0] if args else None
    if origin is dict and isinstance(part, str):
        args = get_args(tp)
        return args[1] if len(args) == 2 else None
    return None


def findings_from_validation(
    error: ValidationError,
    root: Node,
    model: type[BaseModel],
    skip: frozenset[str] = frozenset(),
    reported: frozenset[int] = frozenset(),
) -> list[Finding]:
    """One finding per pydantic error, except those whose type is in ``skip`` and
    those on a node whose ``id`` is in ``reported`` (its problem is known already)."""
    details = [d for d in error.errors(include_url=False) if d["type"] not in skip]
    findings = []
    for detail in details:
        if detail["type"] == "too_short" and _has_inner_error(detail, details):
            continue  # items that failed are not counted: the item errors say it all
        where, finding = _finding(detail, root, model)
        if not (where.found and id(where.node) in reported):
            findings.append(finding)
    return findings


def _has_inner_error(outer: ErrorDetails, details: list[ErrorDetails]) -> bool:
    loc = tuple(outer["loc"])
    return any(len(d["loc"]) > len(loc) and tuple(d["loc"][: len(loc)]) == loc for d in details)


def _finding(detail: ErrorDetails, root: Node, model: type[BaseModel]) -> tuple[Located, Finding]:
    kind, loc = detail["type"], tuple(detail["loc"])
    ctx = detail.get("ctx") or {}
    message = _FRIENDLY.get(kind, detail["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if kind == "union_tag_invalid":
        section = _KIND.get(str(loc[0]), "connector") if loc else "connector"
        message = (
            f"unknown {section} type {ctx.get('tag')!r}: expected one of {ctx.get('expected_tags')}"
        )
        loc = (*loc, "type")
    elif kind == "union_tag_not_found":
        message = "required key is missing"
        loc = (*loc, "type")
    at_key = kind == "extra_forbidden"
    if "key" in ctx and isinstance(ctx["key"], str):
        loc = (*loc, ctx["key"])  # a model-level check naming the key at fault
        at_key = True
    where = locate(root, loc, model)
    node = where.key_node if at_key and where.key_node is not None else where.node
    if kind == "extra_forbidden" and where.found:
        hint = _did_you_mean(where)
        if hint:
            message = f"{message} (did you mean {hint!r}?)"
    line, column = position(node)
    return where, Finding(line, column, f"{format_path(where.path)}: {message}")


def _documented(field: FieldInfo) -> bool:
    """A key ``eai schema`` and the docs describe: it has a description and is neither
    deprecated nor left out of the schema. Only those are suggested: an internal or
    retired key would lead an integrator astray."""
    if not field.description or field.deprecated or field.exclude:
        return False
    # SkipJsonSchema[...] leaves an instance of pydantic's SkipJsonSchema in the metadata
    return not any(type(meta).__name__ == "SkipJsonSchema" for meta in field.metadata)


def _key(name: str, field: FieldInfo) -> str:
    """The key a field is given by in YAML."""
    alias = field.validation_alias
    return alias if isinstance(alias, str) else name


def _did_you_mean(where: Located) -> str | None:
    """The closest documented key the model accepts that the mapping does not have yet."""
    if where.model is None or not isinstance(where.parent, MappingNode) or not where.path:
        return None
    keys = [_key(name, f) for name, f in where.model.model_fields.items() if _documented(f)]
    free = [key for key in keys if mapping_item(where.parent, key) is None]
    hint = difflib.get_close_matches(str(where.path[-1]), free, n=1)
    return hint[0] if hint else None
