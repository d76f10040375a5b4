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

The pipeline's identity writes are applied by ``_identity_ops``; ``eai identity lookup``
reads through ``_xref_lookup``.

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
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Row, insert, select, tuple_, update

from eai.store._crypto import Cipher
from eai.store._schema import identity_merges, identity_xref

__all__ = [
    "RecordOutcome",
    "change_identifier",
    "current_row",
    "known_local_ids",
    "local_ordering_key",
    "merge",
    "open_ins",
    "ordering_key_for",
    "ordering_key_of_hash",
    "record_xref",
    "redirect",
    "resolve",
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


def open_ins(cipher: Cipher, sealed: bytes | None) -> tuple[str, str]:
    """(ins, oid) from a sealed value."""
    if not sealed:
        return "", ""
    oid, _, ins = cipher.open(sealed).decode().partition("|")
    return ins, oid


def current_row(conn: Connection, facility: str, local_hash: str) -> Row[Any] | None:
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


def resolve(conn: Connection, facility: str, local_hash: str) -> _Resolved:
    """Follows aliases (merges, identifier changes) to the identity a local id stands for."""
    chain = [local_hash]
    sealed: bytes | None = None
    row = current_row(conn, facility, local_hash)
    while row is not None and row.alias_of and len(chain) < _MAX_HOPS:
        if row.alias_of in chain:  # redirect never writes a cycle; stop anyway
            break
        chain.append(row.alias_of)
        sealed = row.alias_sealed
        row = current_row(conn, facility, row.alias_of)
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
    current = current_row(conn, facility, local_hash)
    if current is not None:
        if current.alias_of:
            return "merged"
        same_ins = current.ins_hash == ins_hash and (
            not ins_hash or open_ins(cipher, current.ins_sealed)[1] == ins_oid.strip()
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


def redirect(
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
    source = resolve(conn, facility, src)
    src_row = source.row
    regional_before = src_row.regional_id if src_row is not None else ""
    target = resolve(conn, facility, dst)
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
        _close(conn, current_row(conn, facility, dst), now)
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
        target = resolve(conn, facility, dst)
    dst_row = target.row
    _close(conn, current_row(conn, facility, src), now)
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
    redirect(
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
    redirect(conn, cipher, facility, kind="A47", from_id=old_local_id, to_id=new_local_id, now=now)


def ordering_key_for(conn: Connection, cipher: Cipher, facility: str, local_id: str) -> str | None:
    """The delivery ``patient_key`` of the identity a local id stands for; None when the store
    does not know the local id (then use :func:`local_ordering_key`)."""
    local_hash = cipher.hash_id(local_id)
    if current_row(conn, facility, local_hash) is None:
        return None
    return ordering_key_of_hash(conn, cipher, facility, local_hash)


def ordering_key_of_hash(conn: Connection, cipher: Cipher, facility: str, local_hash: str) -> str:
    """The delivery ``patient_key`` of a local id given as its keyed hash, known or not."""
    resolved = resolve(conn, facility, local_hash)
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
