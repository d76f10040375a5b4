"""``eai identity lookup``: a local id's cross-references, their history and merges.

Touches: DB (a short read of its own).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, or_, select

from eai.store._crypto import Cipher
from eai.store._schema import identity_merges, identity_xref
from eai.store._xref import open_ins, resolve

__all__ = ["MergeEvent", "XrefEntry", "XrefView", "lookup"]


def _utc(value: datetime | None) -> str | None:
    return value.replace(tzinfo=UTC).isoformat() if value is not None else None


@dataclass(frozen=True, slots=True)
class XrefEntry:
    """One state of a local id's cross-reference."""

    regional_id: str
    ins: str
    ins_oid: str
    alias_of: str  # the local id this one stands for ("" if none)
    reason: str
    valid_from: datetime
    valid_to: datetime | None

    def __repr__(self) -> str:
        return f"XrefEntry({self.reason}, from {self.valid_from:%Y-%m-%d %H:%M:%S})"

    def to_json(self) -> dict[str, object]:
        return {
            "regional_id": self.regional_id,
            "ins": self.ins,
            "ins_oid": self.ins_oid,
            "alias_of": self.alias_of,
            "reason": self.reason,
            "valid_from": _utc(self.valid_from),
            "valid_to": _utc(self.valid_to),
        }


@dataclass(frozen=True, slots=True)
class MergeEvent:
    at: datetime
    kind: str
    surviving: str
    merged: str
    regional_before: str
    regional_after: str

    def __repr__(self) -> str:
        return f"MergeEvent({self.kind}, {self.at:%Y-%m-%d %H:%M:%S})"

    def to_json(self) -> dict[str, object]:
        return {
            "at": _utc(self.at),
            "kind": self.kind,
            "surviving": self.surviving,
            "merged": self.merged,
            "regional_before": self.regional_before,
            "regional_after": self.regional_after,
        }


@dataclass(frozen=True, slots=True)
class XrefView:
    """A local id's cross-reference: ``current`` state, the identity it resolves to after
    merges (``regional_id``, ``ins``), every former state (oldest first) and the merges."""

    facility: str
    local_id: str
    current: XrefEntry | None
    regional_id: str
    ins: str
    ins_oid: str
    stands_for: str
    history: tuple[XrefEntry, ...]
    merges: tuple[MergeEvent, ...]

    def __repr__(self) -> str:
        return f"XrefView(facility={self.facility!r}, {len(self.history)} states)"

    @property
    def known(self) -> bool:
        return bool(self.history)

    def to_json(self) -> dict[str, object]:
        return {
            "facility": self.facility,
            "local_id": self.local_id,
            "regional_id": self.regional_id,
            "ins": self.ins,
            "ins_oid": self.ins_oid,
            "stands_for": self.stands_for,
            "current": self.current.to_json() if self.current is not None else None,
            "history": [h.to_json() for h in self.history],
            "merges": [m.to_json() for m in self.merges],
        }


def _entry(cipher: Cipher, r: Row[Any]) -> XrefEntry:
    ins, oid = open_ins(cipher, r.ins_sealed)
    alias = cipher.open(r.alias_sealed).decode() if r.alias_sealed else ""
    return XrefEntry(r.regional_id, ins, oid, alias, r.reason, r.valid_from, r.valid_to)


def _merge_events(
    conn: Connection, cipher: Cipher, facility: str, hashes: Sequence[str]
) -> tuple[MergeEvent, ...]:
    rows = conn.execute(
        select(identity_merges)
        .where(
            identity_merges.c.facility == facility,
            or_(
                identity_merges.c.merged_hash.in_(list(hashes)),
                identity_merges.c.surviving_hash.in_(list(hashes)),
            ),
        )
        .order_by(identity_merges.c.id)
    ).all()
    out = []
    for m in rows:
        ids = json.loads(cipher.open(m.ids_sealed))
        out.append(
            MergeEvent(
                m.at,
                m.kind,
                str(ids.get("surviving", "")),
                str(ids.get("merged", "")),
                m.regional_before,
                m.regional_after,
            )
        )
    return tuple(out)


def lookup(engine: Engine, cipher: Cipher, facility: str, local_id: str) -> XrefView:
    """The cross-reference of a facility's local id (``known`` False if the store has none)."""
    local_hash = cipher.hash_id(local_id)
    with engine.connect() as conn:
        rows = conn.execute(
            select(identity_xref)
            .where(
                identity_xref.c.facility == facility,
                identity_xref.c.local_id_hash == local_hash,
            )
            .order_by(identity_xref.c.id)
        ).all()
        history = tuple(_entry(cipher, r) for r in rows)
        current = next((h for h in reversed(history) if h.valid_to is None), None)
        found = resolve(conn, facility, local_hash)
        resolved = _entry(cipher, found.row) if found.row is not None else None
        stands_for = cipher.open(found.alias_sealed).decode() if found.alias_sealed else ""
        merges = _merge_events(conn, cipher, facility, [local_hash])
    return XrefView(
        facility=facility,
        local_id=local_id,
        current=current,
        regional_id=resolved.regional_id if resolved is not None else "",
        ins=resolved.ins if resolved is not None else "",
        ins_oid=resolved.ins_oid if resolved is not None else "",
        stands_for=stands_for,
        history=history,
        merges=merges,
    )
