"""Reading the raw routes.yaml data that cross-checks walk: lists that may be malformed.

Touches: nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["listed"]


def listed(value: object) -> Sequence[Any]:
    """``value`` when the YAML gave a list there, else nothing: a cross-check runs on the
    raw file and skips what is malformed (model validation reports it, with its place)."""
    return value if isinstance(value, list | tuple) else ()
