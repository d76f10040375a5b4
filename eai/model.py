"""The base of every config model (strict, frozen) and the field types they share (Duration).

Touches: nothing.

A base module: it imports nothing from eai, so the config models of :mod:`eai.net`
(TLS), :mod:`identity` (the identity server) and :mod:`eai.config` (routes.yaml) all
build on it without an import cycle. :mod:`eai.config` re-exports every name.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, WithJsonSchema

__all__ = ["Duration", "Model", "parse_duration"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """``"30s"``, ``"10m"``, ``"500ms"``, ``"1h"``, ``2`` (seconds) -> seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like 30s, 10m, 500ms")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _UNIT[m.group(2)]
    raise ValueError(f"invalid duration {value!r}: use a number of seconds or 30s, 10m, 500ms, 1h")


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": r"^\d+(\.\d+)?(ms|s|m|h|d)?$"},
            ],
            "description": "seconds, or a string such as 500ms, 30s, 10m, 1h",
        }
    ),
]


class Model(BaseModel):
    """Strict, frozen: an unknown key is an error, a loaded config never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
