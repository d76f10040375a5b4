"""Write values into FHIR JSON at element paths with FHIR Shorthand soft indexing.

Touches: nothing.

A target path (the left-hand side of a ``set`` entry) is compiled once
against the R4B model of its resource type, so an unknown element is a load
error, and written many times::

    identifier[+].system          append a new identifier, set its system
    identifier[=].value           the last identifier
    name[2].family                explicit 0-based index (FSH)
    name.family                   a repeating element without index: index 0 (FSH)
    extension[url=http://x/y].valueCode   the extension with that url (created if missing)

Values are typed by the model: ``boolean`` (``true``/``false``, ``Y``/``N``,
``1``/``0``), ``integer``, ``decimal``; other primitives stay text. A list
value written to a repeating element without index replaces it; with
``[+]`` each item is appended.

A ``set`` block is one unit: when the entry carrying a ``[+]`` has no value,
the ``[+]`` is *pending* and the next ``[=]`` on that list creates the new
element instead (:class:`Block`), so no element is ever left empty.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel

from mappings._fhirmodel import elements

__all__ = ["Pending", "Target", "compile_target"]

_TOKEN = re.compile(r"(?P<name>[A-Za-z][A-Za-z0-9]*)(?:\[(?P<index>[^\]]+)\])?")
_TRUE = {"true", "y", "yes", "1", "o", "oui"}
_FALSE = {"false", "n", "no", "0", "non"}
_TYPED = frozenset({"boolean", "integer", "decimal"})

Pending = set[str]
"""Keys of lists whose ``[+]`` is waiting for a value (one set per block run)."""


@dataclass(frozen=True, slots=True)
class _Step:
    name: str
    is_list: bool
    index: str  # "" (none), "+", "=", "url", or a decimal index
    arg: str  # the url of [url=...], the index as text
    key: str  # the list's path in the block, for pending [+]
    primitive: str
    typed: bool  # boolean, integer or decimal: text is converted


def _split(path: str) -> list[str]:
    """``a.b[url=http://x.y/z].c`` -> ``["a", "b[url=http://x.y/z]", "c"]``."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(path):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "." and depth == 0:
            parts.append(path[start:i])
            start = i + 1
    parts.append(path[start:])
    return parts


class Target:
    """A compiled element path; :meth:`write` sets a value on a resource (a dict)."""

    __slots__ = ("head", "leaf", "path", "plus_keys", "steps")

    def __init__(self, path: str, steps: list[_Step]) -> None:
        self.path = path
        self.steps = steps
        self.head = tuple(steps[:-1])
        self.leaf = steps[-1]
        self.plus_keys = tuple(s.key for s in steps if s.index == "+")

    def mark_pending(self, pending: Pending) -> None:
        """The value of this entry is empty: its ``[+]`` wait for the next ``[=]``."""
        pending.update(self.plus_keys)

    def write(self, resource: dict[str, Any], value: Any, pending: Pending) -> None:
        node = resource
        for step in self.head:
            name = step.name
            if step.is_list:
                items = node.get(name)
                if items is None:
                    items = node[name] = []
                node = _child(items, step, pending)
            else:
                child = node.get(name)
                if child is None:
                    child = node[name] = {}
                node = child
        leaf = self.leaf
        if not leaf.is_list:
            node[leaf.name] = _typed(value, leaf.primitive) if leaf.typed else value
            return
        items = node.get(leaf.name)
        if items is None:
            items = node[leaf.name] = []
        _write_list(items, leaf, value, pending)
        if not items:
            del node[leaf.name]


def _write_list(items: list[Any], step: _Step, value: Any, pending: Pending) -> None:
    values = value if isinstance(value, list) else [value]
    values = [_typed(v, step.primitive) if step.typed else v for v in values if v not in ("", None)]
    if step.index == "+":
        pending.discard(step.key)
        items.extend(values)
    elif step.index == "":
        items[:] = values
    elif not values:
        return
    elif step.index == "=":
        if step.key in pending or not items:
            pending.discard(step.key)
            items.append(values[0])
        else:
            items[-1] = values[0]
    else:
        index = int(step.arg)
        if index < len(items):
            items[index] = values[0]
        elif index == len(items):
            items.append(values[0])
        else:
            raise ValueError(f"{step.name}[{index}]: index past the end (use [+])")


def _child(items: list[Any], step: _Step, pending: Pending) -> dict[str, Any]:
    index = step.index
    if index == "=" and items and step.key not in pending:
        last: dict[str, Any] = items[-1]
        return last
    if index == "url":
        for item in items:
            if isinstance(item, dict) and item.get("url") == step.arg:
                return item
        new: dict[str, Any] = {"url": step.arg}
        items.append(new)
        return new
    if index == "+" or (index == "=" and (step.key in pending or not items)):
        pending.discard(step.key)
        items.append({})
        return items[-1]  # type: ignore[no-any-return]
    position = -1 if index == "=" else int(step.arg or 0)
    if position >= len(items):
        if position > len(items):
            raise ValueError(f"{step.name}[{position}]: index past the end (use [+])")
        items.append({})
    found = items[position]
    if not isinstance(found, dict):
        raise ValueError(f"{step.name}: not a complex element")
    return found


def _typed(value: Any, primitive: str) -> Any:
    if not isinstance(value, str) or not primitive:
        return value
    if primitive == "boolean":
        low = value.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError(f"not a boolean: expected true/false or Y/N (got {len(value)} chars)")
    if primitive == "integer":
        try:
            return int(value.strip())
        except ValueError:
            raise ValueError("not an integer") from None
    if primitive == "decimal":
        try:
            number = Decimal(value.strip().replace(",", "."))
        except InvalidOperation:
            raise ValueError("not a decimal number") from None
        return (
            int(number)
            if number == number.to_integral_value() and "." not in value
            else (float(number))
        )
    return value


def compile_target(model: type[BaseModel], path: str) -> Target:
    """Compile ``path`` for resources of ``model``; ValueError names the bad step."""
    if not path:
        raise ValueError("empty element path")
    steps: list[_Step] = []
    current: type[BaseModel] | None = model
    prefix = ""
    for part in _split(path):
        m = _TOKEN.fullmatch(part)
        if m is None:
            raise ValueError(f"invalid element {part!r} in {path!r}")
        if current is None:
            raise ValueError(f"{steps[-1].name!r} is a primitive: it has no element {part!r}")
        known = elements(current)
        element = known.get(m["name"])
        if element is None:
            raise ValueError(
                f"{current.__name__} has no element {m['name']!r}{_hint(m['name'], known)}"
            )
        raw_index = m["index"] or ""
        index, arg = _index(raw_index, element.name)
        if index and not element.is_list:
            raise ValueError(f"{element.name!r} does not repeat: remove [{raw_index}]")
        if index == "url" and element.name not in ("extension", "modifierExtension"):
            raise ValueError(f"[url=...] selects extensions: {element.name!r} is not one")
        key = f"{prefix}{element.name}"
        typed = element.primitive in _TYPED
        steps.append(
            _Step(element.name, element.is_list, index, arg, key, element.primitive, typed)
        )
        prefix = f"{key}[{raw_index}]." if raw_index else f"{key}."
        current = element.model
    return Target(path, steps)


def _index(text: str, name: str) -> tuple[str, str]:
    if not text:
        return "", ""
    if text in ("+", "="):
        return text, ""
    if text.isdigit():
        return "n", text
    if text.startswith("url="):
        return "url", text[4:]
    raise ValueError(f"{name}[{text}]: use [+], [=], [N] (0-based) or [url=...]")


def _hint(name: str, known: Iterable[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
