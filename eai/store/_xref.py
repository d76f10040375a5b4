"""Cross-references: (facility, local id) <-> regional id <-> INS, their history, merges.

Touches: DB.

What is stored how (``identity_xref``, ``identity_merges`` in ``_schema``):

* the local id as its keyed hash (``Cipher.hash_id``, the hash ``message_patient_ids``
  uses, so ``eai identity lookup`` and ``eai messages --patient`` find the same patient);
* the INS sealed (AES-GCM, with its OID) for display, plus its keyed hash to find every
  local id of one INS without decrypting: an INS is the NIR-based national identifier,
  meaningful anywhere;
* the regional id in clear: an opaque identifier of the regional platform, carrying no
  trait. Inside the journal a keyed hash would link rows exactly as the clear value does,
  and operators need it to talk with the regional identity team;
* a row per state, ``valid_to`` NULL for the current one: nothing is updated in place but
  ``valid_to``. After an A40 merge or an A47 identifier change the local id's current row
  is an alias (``alias_of``: the surviving / new local id's hash, its value sealed).

Ordering: :func:`ordering_key_for` follows aliases to the identity a local id now stands
for and gives its key: the keyed hash of the regional id when the identity is
reconciled, else :func:`local_ordering_key` of the surviving local id, which is also the
key to use for a local id the store does not know, so that messages of a merged patient
wait behind those of the surviving identity.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Connection, Engine, Row, and_, insert, or_, select, tuple_, update

from eai.store._crypto import Cipher
from eai.store._schema import ACTIVE_DELIVERY, deliveries, identity_merges, identity_xref

__all__ = [
    "IdentityOp",
    "MergeEvent",
    "RecordOutcome",
    "XrefRecord",
    "XrefRedirect",
    "XrefEntry",
    "XrefView",
    "apply_identity_op",
    "change_identifier",
    "known_local_ids",
    "local_ordering_key",
    "lookup",
    "merge",
    "ordering_key_for",
    "ordering_key_of_hash",
    "record_xref",
]

RecordOutcome = Literal["created", "updated", "unchanged", "merged"]
_MAX_HOPS = 32


def local_ordering_key(cipher: Cipher, facility: str, local_id: str) -> str:
    """The ordering key of a local id that no reconciliation or merge redirects."""
    return _local_key(cipher, facility, cipher.hash_id(local_id))


def _local_key(cipher: Cipher, facility: str, local_hash: str) -> str:
    return cipher.hash_id(f"local|{facility}|{local_hash}")


def _regional_key(cipher: Cipher, regional_id: str) -> str:
    return cipher.hash_id(f"regional|{regional_id}")


def _seal_ins(cipher: Cipher, ins: str, oid: str) -> tuple[str, bytes | None]:
    value = ins.strip().upper()
    if not value:
        return "", None
    return cipher.hash_id(value), cipher.seal(f"{oid.strip()}|{value}".encode())


def _open_ins(cipher: Cipher, sealed: bytes | None) -> tuple[str, str]:
    """(ins, oid) from a sealed value."""
    if not sealed:
        return "", ""
    oid, _, ins = cipher.open(sealed).decode().partition("|")
    return ins, oid


def _current(conn: Connection, facility: str, local_hash: str) -> Row[Any] | None:
    return conn.execute(
        select(identity_xref)
        .where(
            identity_xref.c.facility == facility,
            identity_xref.c.local_id_hash == local_hash,
            identity_xref.c.valid_to.is_(None),
        )
        .order_by(identity_xref.c.id.desc())
        .limit(1)
    ).first()


@dataclass(frozen=True, slots=True)
class _Resolved:
    chain: tuple[str, ...]  # the local id hashes followed, first = the one asked
    row: Row[Any] | None  # the current row of the last one
    alias_sealed: bytes | None  # the last one's local id, sealed (None if no hop)

    @property
    def final(self) -> str:
        return self.chain[-1]


def _resolve(conn: Connection, facility: str, local_hash: str) -> _Resolved:
    """Follows aliases (merges, identifier changes) to the identity a local id stands for."""
    chain = [local_hash]
    sealed: bytes | None = None
    row = _current(conn, facility, local_hash)
    while row is not None and row.alias_of and len(chain) < _MAX_HOPS:
        if row.alias_of in chain:  # _redirect never writes a cycle; stop anyway
            break
        chain.append(row.alias_of)
        sealed = row.alias_sealed
        row = _current(conn, facility, row.alias_of)
    return _Resolved(tuple(chain), row, sealed)


def _close(conn: Connection, row: Row[Any] | None, now: datetime) -> None:
    if row is not None:
        conn.execute(update(identity_xref).where(identity_xref.c.id == row.id).values(valid_to=now))


def _insert(
    conn: Connection,
    facility: str,
    local_hash: str,
    reason: str,
    now: datetime,
    *,
    regional_id: str = "",
    ins_hash: str = "",
    ins_sealed: bytes | None = None,
    alias_of: str | None = None,
    alias_sealed: bytes | None = None,
) -> None:
    conn.execute(
        insert(identity_xref).values(
            facility=facility,
            local_id_hash=local_hash,
            regional_id=regional_id,
            ins_hash=ins_hash,
            ins_sealed=ins_sealed,
            alias_of=alias_of,
            alias_sealed=alias_sealed,
            reason=reason,
            valid_from=now,
            valid_to=None,
        )
    )


def record_xref(
    conn: Connection,
    cipher: Cipher,
    facility: str,
    local_id: str,
    regional_id: str,
    ins: str,
    now: datetime,
    *,
    ins_oid: str = "",
) -> RecordOutcome:
    """Records what reconciliation found for a facility's local id.

    ``unchanged`` when it is what the store holds; ``updated`` when the regional id or the
    INS changed (the former state stays in the history: worth a look, an identity
    collision shows this way); ``merged`` (nothing written) when the local id was merged
    or renamed by the establishment, whose A40/A47 stands until it says otherwise.
    """
    if not local_id.strip() or not (regional_id or ins.strip()):
        return "unchanged"
    local_hash = cipher.hash_id(local_id)
    ins_hash, ins_sealed = _seal_ins(cipher, ins, ins_oid)
    current = _current(conn, facility, local_hash)
    if current is not None:
        if current.alias_of:
            return "merged"
        same_ins = current.ins_hash == ins_hash and (
            not ins_hash or _open_ins(cipher, current.ins_sealed)[1] == ins_oid.strip()
        )
        if current.regional_id == regional_id and same_ins:
            return "unchanged"
        _close(conn, current, now)
    _insert(
        conn,
        facility,
        local_hash,
        "updated" if current is not None else "reconciled",
        now,
        regional_id=regional_id,
        ins_hash=ins_hash,
        ins_sealed=ins_sealed,
    )
    return "updated" if current is not None else "created"


def _redirect(
    conn: Connection,
    cipher: Cipher,
    facility: str,
    *,
    kind: Literal["A40", "A47"],
    from_id: str,
    to_id: str,
    now: datetime,
) -> None:
    """Makes ``from_id`` stand for ``to_id``: its current row becomes an alias, history kept.

    A47 (same patient, new id) hands the old id's cross-reference to the new id when the
    new one has none; A40 does not (the merged record's regional id was the duplicate's).
    """
    src, dst = cipher.hash_id(from_id), cipher.hash_id(to_id)
    if src == dst:
        return
    reason = "merged" if kind == "A40" else "id_changed"
    source = _resolve(conn, facility, src)
    src_row = source.row
    regional_before = src_row.regional_id if src_row is not None else ""
    target = _resolve(conn, facility, dst)
    transfer = (
        kind == "A47"
        and src_row is not None
        and len(source.chain) == 1  # the old id is an identity, not an alias itself
        and len(target.chain) == 1
        and target.row is None  # the new id has no cross-reference of its own
    )
    if src in target.chain or transfer:
        # to_id stands for from_id already (merged the other way before): it becomes the
        # identity itself, with from_id's cross-reference, so no cycle is written. Or A47:
        # the new id takes the old one's cross-reference.
        _close(conn, _current(conn, facility, dst), now)
        _insert(
            conn,
            facility,
            dst,
            reason,
            now,
            regional_id=src_row.regional_id if src_row is not None else "",
            ins_hash=src_row.ins_hash if src_row is not None else "",
            ins_sealed=src_row.ins_sealed if src_row is not None else None,
        )
        target = _resolve(conn, facility, dst)
    dst_row = target.row
    _close(conn, _current(conn, facility, src), now)
    _insert(
        conn,
        facility,
        src,
        reason,
        now,
        regional_id=dst_row.regional_id if dst_row is not None else "",
        ins_hash=dst_row.ins_hash if dst_row is not None else "",
        ins_sealed=dst_row.ins_sealed if dst_row is not None else None,
        alias_of=dst,
        alias_sealed=cipher.seal(to_id.strip().encode()),
    )
    ids = {"surviving": to_id.strip(), "merged": from_id.strip()}
    conn.execute(
        insert(identity_merges).values(
            at=now,
            facility=facility,
            kind=kind,
            surviving_hash=dst,
            merged_hash=src,
            ids_sealed=cipher.seal(json.dumps(ids).encode()),
            regional_before=regional_before,
            regional_after=dst_row.regional_id if dst_row is not None else "",
        )
    )


def merge(
    conn: Connection,
    cipher: Cipher,
    facility: str,
    surviving_local_id: str,
    merged_local_id: str,
    now: datetime,
) -> None:
    """A40 (PID-3 surviving, MRG-1 merged): the merged id now stands for the surviving
    identity (its regional id, INS and ordering key); its former state stays in history."""
    _redirect(
        conn,
        cipher,
        facility,
        kind="A40",
        from_id=merged_local_id,
        to_id=surviving_local_id,
        now=now,
    )


def change_identifier(
    conn: Connection,
    cipher: Cipher,
    facility: str,
    old_local_id: str,
    new_local_id: str,
    now: datetime,
) -> None:
    """A47 (MRG-1 old id, PID-3 new id): the new id takes the old one's cross-reference
    (unless it has its own), the old id becomes an alias of the new one."""
    _redirect(conn, cipher, facility, kind="A47", from_id=old_local_id, to_id=new_local_id, now=now)


def ordering_key_for(conn: Connection, cipher: Cipher, facility: str, local_id: str) -> str | None:
    """The delivery ``patient_key`` of the identity a local id stands for; None when the store
    does not know the local id (then use :func:`local_ordering_key`)."""
    local_hash = cipher.hash_id(local_id)
    if _current(conn, facility, local_hash) is None:
        return None
    return ordering_key_of_hash(conn, cipher, facility, local_hash)


def ordering_key_of_hash(conn: Connection, cipher: Cipher, facility: str, local_hash: str) -> str:
    """The delivery ``patient_key`` of a local id given as its keyed hash, known or not."""
    resolved = _resolve(conn, facility, local_hash)
    if resolved.row is not None and resolved.row.regional_id:
        return _regional_key(cipher, resolved.row.regional_id)
    return _local_key(cipher, facility, resolved.final)


def known_local_ids(conn: Connection, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """The (facility, local id hash) pairs the store has a current row for: one query, so
    that a batch of patients it has never seen costs nothing more."""
    if not pairs:
        return set()
    rows = conn.execute(
        select(identity_xref.c.facility, identity_xref.c.local_id_hash).where(
            identity_xref.c.valid_to.is_(None),
            tuple_(identity_xref.c.facility, identity_xref.c.local_id_hash).in_(sorted(set(pairs))),
        )
    ).all()
    return {(r.facility, r.local_id_hash) for r in rows}


# --- what the pipeline asks for ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class XrefRecord:
    """Reconciliation found the regional identity of a facility's local id."""

    facility: str
    local_id: str
    regional_id: str
    ins: str = ""
    ins_oid: str = ""

    def __repr__(self) -> str:  # never show identifiers in logs or tracebacks
        return f"XrefRecord(facility={self.facility!r})"


@dataclass(frozen=True, slots=True)
class XrefRedirect:
    """The establishment merged (A40: ``from_id`` = MRG-1, ``to_id`` = PID-3) or renamed
    (A47: ``from_id`` = MRG-1 old id, ``to_id`` = PID-3 new id) a local id."""

    kind: Literal["A40", "A47"]
    facility: str
    from_id: str
    to_id: str

    def __repr__(self) -> str:
        return f"XrefRedirect({self.kind}, facility={self.facility!r})"


IdentityOp = XrefRecord | XrefRedirect

_WAITING_STATUSES = (*ACTIVE_DELIVERY, "held")
"""Not delivered yet and not given up on: pending, waiting for a retry, or held."""


def _rekey(conn: Connection, old: str, new: str) -> int:
    """Moves the not-yet-delivered deliveries of ordering key ``old`` to ``new``: their ids
    keep them in arrival order within the merged chain."""
    result = conn.execute(
        update(deliveries)
        .where(and_(deliveries.c.patient_key == old, deliveries.c.status.in_(_WAITING_STATUSES)))
        .values(patient_key=new)
    )
    return int(result.rowcount or 0)


def apply_identity_op(conn: Connection, cipher: Cipher, op: IdentityOp, now: datetime) -> int:
    """Writes ``op`` and re-keys the waiting deliveries of every local id whose ordering key
    it changed (so a merged patient's messages wait behind the surviving identity's).
    Returns how many deliveries were re-keyed."""
    if isinstance(op, XrefRecord):
        involved = [op.local_id]
    else:
        involved = [op.from_id, op.to_id]
    hashes = [cipher.hash_id(i) for i in involved if i.strip()]
    before = {h: ordering_key_of_hash(conn, cipher, op.facility, h) for h in hashes}
    if isinstance(op, XrefRecord):
        record_xref(
            conn, cipher, op.facility, op.local_id, op.regional_id, op.ins, now, ins_oid=op.ins_oid
        )
    elif op.from_id.strip() and op.to_id.strip():
        _redirect(
            conn, cipher, op.facility, kind=op.kind, from_id=op.from_id, to_id=op.to_id, now=now
        )
    moved = 0
    for h, old in before.items():
        new = ordering_key_of_hash(conn, cipher, op.facility, h)
        if new != old:
            moved += _rekey(conn, old, new)
    return moved


# --- reading -------------------------------------------------------------------------------


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
    ins, oid = _open_ins(cipher, r.ins_sealed)
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
        found = _resolve(conn, facility, local_hash)
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
