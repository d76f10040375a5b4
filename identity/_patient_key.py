"""Extracts a message's patient identifiers and its per-patient ordering key.

Touches: nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["PatientKey", "patient_key_of"]


class _Readable(Protocol):
    def get(self, path: str) -> str: ...

    def get_all(self, path: str) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class PatientKey:
    """``ordering_key``: PID-3[1] id ^ assigning authority; ``identifiers``:
    every PID-3 id value (IPP, INS, ...), for search by keyed hash."""

    ordering_key: str
    identifiers: tuple[str, ...]

    def __repr__(self) -> str:  # never show identifiers in logs or tracebacks
        return f"PatientKey(<{len(self.identifiers)} identifiers>)"


def patient_key_of(message: _Readable) -> PatientKey:
    reps = message.get_all("PID-3")
    ids = tuple(v for i in range(1, len(reps) + 1) if (v := message.get(f"PID-3[{i}].1").strip()))
    first = message.get("PID-3[1].1").strip()
    authority = message.get("PID-3[1].4").strip()
    ordering = f"{first}^{authority}" if first else ""
    return PatientKey(ordering, ids)
