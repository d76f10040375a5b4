"""Parse the field paths used by ``Hl7Message.get`` and by routes.yaml.

Touches: nothing.

Syntax: ``SEG[occ]-field[rep].component.subcomponent``; every number is 1-based
and written without leading zeros; ``[occ]`` and ``[rep]`` default to 1, the
component and subcomponent are optional. Examples: ``PID-3``, ``PID-3[2].4.2``,
``MSH-9.1``, ``OBX[3]-5``, ``PV1-2``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

__all__ = ["Path", "parse_path", "validate_path"]

_NUM = r"[1-9][0-9]{0,5}"
_PATH = re.compile(
    rf"(?P<seg>[A-Z0-9]{{3}})(?:\[(?P<occ>{_NUM})\])?-(?P<field>{_NUM})(?:\[(?P<rep>{_NUM})\])?"
    rf"(?:\.(?P<comp>{_NUM})(?:\.(?P<sub>{_NUM}))?)?"
)
_SYNTAX = "expected SEG[occ]-field[rep].component.subcomponent, e.g. PID-3[2].4.2 or OBX[3]-5"


class Path(NamedTuple):
    """A parsed path; ``repetition``, ``component`` and ``subcomponent`` are 0 when not given."""

    segment: str
    occurrence: int
    field: int
    repetition: int
    component: int
    subcomponent: int


@lru_cache(maxsize=4096)
def parse_path(path: str) -> Path:
    """Parse ``path``; raise ValueError with the expected syntax when it is malformed."""
    match = _PATH.fullmatch(path) if isinstance(path, str) else None
    if match is None:
        raise ValueError(f"invalid HL7 path {path!r}: {_SYNTAX}")
    occ, rep, comp, sub = match.group("occ", "rep", "comp", "sub")
    return Path(
        match["seg"],
        int(occ) if occ else 1,
        int(match["field"]),
        int(rep) if rep else 0,
        int(comp) if comp else 0,
        int(sub) if sub else 0,
    )


def validate_path(path: str) -> None:
    """Raise ValueError with a clear message when ``path`` is not a valid HL7 path."""
    parse_path(path)
