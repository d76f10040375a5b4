"""A patient's identity as a message states it: INS, local ids, RNIV traits, status.

Touches: nothing.

Read from HL7 v2 PAM FR PID (IHE PAM France 2.11): PID-3 repetitions (type
INS with the OID in CX.4.2, type PI local ids), PID-5 name type L (birth
family name in .1, first given name in .2, all birth given names in .3), PID-5
type D (used name), PID-7 birth date, PID-8 sex, PID-11 type BDL (.9 = INSEE
code of the birth place), PID-32 identity reliability.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from identity.status import IdentityStatus, identity_status

__all__ = ["LocalId", "PatientIdentity", "identity_from_hl7"]


class _Segment(Protocol):
    def get(
        self, field: int, repetition: int = 1, component: int = 0, subcomponent: int = 0
    ) -> str: ...

    def get_all(self, field: int, component: int = 0, subcomponent: int = 0) -> list[str]: ...


class _Readable(Protocol):
    """An HL7 v2 message (``eai.hl7.Hl7Message``): its segments by name."""

    def segment(self, name: str, occurrence: int = 1) -> _Segment | None: ...


class _NoSegment:
    """A segment the message does not have: every value is empty."""

    def get(
        self, field: int, repetition: int = 1, component: int = 0, subcomponent: int = 0
    ) -> str:
        return ""

    def get_all(self, field: int, component: int = 0, subcomponent: int = 0) -> list[str]:
        return []


_NONE = _NoSegment()


@dataclass(frozen=True, slots=True)
class LocalId:
    value: str
    authority: str  # CX.4 namespace
    authority_oid: str  # CX.4.2
    type: str  # CX.5


@dataclass(frozen=True)
class PatientIdentity:
    """Traits as sent (never normalised here: comparison uses identity.traits)."""

    facility: str = ""
    ins: str = ""
    ins_oid: str = ""
    local_ids: tuple[LocalId, ...] = ()
    birth_name: str = ""
    used_name: str = ""
    first_given_name: str = ""
    birth_given_names: tuple[str, ...] = ()
    birth_date: str = ""
    sex: str = ""
    birth_place: str = ""
    pid32: str = ""
    status: IdentityStatus = "PROV"
    extra: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # never print traits
        return f"PatientIdentity(facility={self.facility!r}, status={self.status})"

    def trait(self, name: str) -> str:
        """A trait by name (for rules); lists are space-joined."""
        value = getattr(self, name, None)
        if isinstance(value, tuple):
            return " ".join(str(v) for v in value)
        if isinstance(value, str):
            return value
        return self.extra.get(name, "")


def identity_from_hl7(
    msg: _Readable, status_table: Mapping[tuple[str, bool], IdentityStatus] | None = None
) -> PatientIdentity:
    """The identity PID states; ``status_table`` overrides identity.status's default.

    Read by position on the PID segment (``get(field, repetition, component,
    subcomponent)``): the values of the paths ``PID-3[i].1``, ``PID-5[i].7``..., without
    a path to parse per value (this runs for every message the pipeline plans)."""
    pid = msg.segment("PID") or _NONE
    ins = ins_oid = ""
    local: list[LocalId] = []
    for i in range(1, len(pid.get_all(3)) + 1):
        value = pid.get(3, i, 1).strip()
        kind = pid.get(3, i, 5).strip().upper()
        oid = pid.get(3, i, 4, 2).strip()
        if not value:
            continue
        if kind == "INS" and not ins:
            ins, ins_oid = value, oid
        else:
            local.append(LocalId(value, pid.get(3, i, 4, 1).strip(), oid, kind))
    birth_name = used_name = first = ""
    given: tuple[str, ...] = ()
    for i in range(1, len(pid.get_all(5)) + 1):
        kind = pid.get(5, i, 7).strip().upper()
        if kind == "L" and not birth_name:
            birth_name = pid.get(5, i, 1).strip()
            first = pid.get(5, i, 2).strip()
            given = tuple(pid.get(5, i, 3).split())
        elif kind == "D" and not used_name:
            used_name = pid.get(5, i, 1).strip()
    birth_place = ""
    for i in range(1, len(pid.get_all(11)) + 1):
        if pid.get(11, i, 7).strip().upper() == "BDL":
            birth_place = pid.get(11, i, 9).strip()
            break
    pid32 = pid.get(32).strip()
    msh = msg.segment("MSH") or _NONE
    return PatientIdentity(
        facility=msh.get(4, 1, 1).strip(),
        ins=ins,
        ins_oid=ins_oid,
        local_ids=tuple(local),
        birth_name=birth_name,
        used_name=used_name,
        first_given_name=first,
        birth_given_names=given,
        birth_date=pid.get(7, 1, 1).strip(),
        sex=pid.get(8).strip(),
        birth_place=birth_place,
        pid32=pid32,
        status=identity_status(pid32, bool(ins), status_table),
    )
