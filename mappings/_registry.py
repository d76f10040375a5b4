"""The registry of Python functions a mapping file may name (``fn:``).

Touches: nothing.

Two kinds, told apart by the decorator or, by default, by the annotation of
the first parameter:

- a *transform* (``transform: [{fn: name}]``): ``fn(value) -> value``, where
  the value is text (or a list of texts for ``from: [paths]`` / ``split``);
- a *rule* (``- fn: name``): ``fn(ctx: MappingContext) -> None``; it reads
  the source and writes elements of the resource being built through ``ctx``.

Functions live in ``mappings/functions/*.py`` and register on import
(:func:`mappings._loader` imports the package before compiling a mapping).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

__all__ = ["Registered", "lookup", "mapping_function", "registered"]

Kind = Literal["rule", "transform"]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Registered:
    name: str
    kind: Kind
    function: Callable[..., Any]


_functions: dict[str, Registered] = {}


def mapping_function(name: str, *, kind: Kind | None = None) -> Callable[[F], F]:
    """Register the decorated function under ``name`` (see the module docstring)."""

    def register(function: F) -> F:
        chosen = kind or _infer(function)
        existing = _functions.get(name)
        if existing is not None and existing.function is not function:
            raise ValueError(f"mapping function {name!r} registered twice")
        _functions[name] = Registered(name, chosen, function)
        return function

    return register


def _infer(function: Callable[..., Any]) -> Kind:
    params = list(inspect.signature(function).parameters.values())
    if not params:
        raise TypeError(f"{function.__qualname__}: a mapping function takes one argument")
    annotation = params[0].annotation
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    return "rule" if "MappingContext" in str(text) else "transform"


def lookup(name: str) -> Registered | None:
    return _functions.get(name)


def registered() -> dict[str, Registered]:
    return dict(_functions)
