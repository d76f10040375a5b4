"""What the FHIR R4B models (``fhir.resources.R4B``) say about elements: name, list or not, type.

Touches: nothing (imports the model classes, once, on first use).

The path writer uses it at load time to check every element a mapping
names and to know whether ``name`` repeats (FSH index 0) or how to type a
value (``boolean``, ``integer``, ``decimal``); the light validator walks
produced JSON with it.
"""

from __future__ import annotations

import functools
import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

__all__ = ["Element", "elements", "resource_model"]

_NUMERIC = {"integer": "integer", "positiveint": "integer", "unsignedint": "integer"}


@dataclass(frozen=True, slots=True)
class Element:
    """One element of a FHIR type, as named in JSON."""

    name: str
    is_list: bool
    model: type[BaseModel] | None
    """The complex type's model; None for a primitive."""
    primitive: str
    """``string``, ``code``, ``uri``, ``date``, ``datetime``, ``boolean``, ``integer``,
    ``decimal``... (lower-cased FHIR type); "" for a complex type."""
    required: bool
    choice: str
    """The choice group (``value`` for ``valueString``); "" when not a choice."""


@functools.cache
def resource_model(resource_type: str) -> type[BaseModel]:
    """The R4B model of ``resource_type``; ValueError when FHIR has no such type."""
    from fhir.resources.R4B import get_fhir_model_class
    from fhir.resources.R4B.resource import Resource

    model: type[BaseModel] = get_fhir_model_class(resource_type)
    if not issubclass(model, Resource):
        raise ValueError(f"{resource_type} is not a FHIR resource type")
    return model


@functools.cache
def elements(model: type[BaseModel]) -> dict[str, Element]:
    """The elements of ``model`` by JSON name (primitive ``_x`` siblings excluded)."""
    out: dict[str, Element] = {}
    for field_name, field in model.model_fields.items():
        if field_name.endswith("__ext") or field_name == "fhir_comments":
            continue
        name = field.alias or field_name
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if extra.get("element_property") is False:
            continue
        is_list, inner = _unwrap(field.annotation)
        child, primitive = _kind(inner)
        required = bool(extra.get("element_required")) or field.is_required()
        choice = str(extra.get("one_of_many") or "")
        out[name] = Element(name, is_list, child, primitive, required, choice)
    return out


def _unwrap(annotation: Any) -> tuple[bool, Any]:
    tp, is_list = annotation, False
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Union or origin is types.UnionType:
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = members[0] if len(members) == 1 else str
            continue
        if origin is list:
            is_list, tp = True, typing.get_args(tp)[0]
            continue
        return is_list, tp


def _kind(tp: Any) -> tuple[type[BaseModel] | None, str]:
    if typing.get_origin(tp) is typing.Annotated:
        marker = typing.get_args(tp)[1]
        name = type(marker).__name__.lower()
        return None, _NUMERIC.get(name, name)
    if tp is bool:
        return None, "boolean"
    get_klass = getattr(tp, "get_model_klass", None)
    if get_klass is not None:
        klass: type[BaseModel] = get_klass()
        return klass, ""
    return None, "string"
