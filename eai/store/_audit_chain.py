"""Reading the audit trail: list records, walk and check the chain, purge old records.

Touches: DB (reads; ``purge_audit`` deletes old records and appends its own, in one
transaction; ``set_audit_cursor`` writes the forwarder's cursor).

A purge keeps the chain checkable: the MAC and sequence number of the last record it
deletes become the ``anchor`` the first kept record links to, and the purge's own
record (chained, so unforgeable without the key) names that anchor; ``verify`` accepts
an anchor only if a purge record names it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, delete, func, select, update

from eai.store._audit import (
    GENESIS,
    AuditActor,
    AuditEntry,
    AuditRecord,
    append,
    audit_log,
    audit_state,
    insert_absent,
    lock_head,
    record_mac,
    record_of,
    upsert_state,
)
from eai.store._crypto import Cipher

__all__ = [
    "ChainCheck",
    "audit_after",
    "audit_cursor",
    "hold_audit_lease",
    "list_audit",
    "purge_audit",
    "set_audit_cursor",
    "verify_chain",
]

_CHUNK = 1000


@dataclass(frozen=True)
class ChainCheck:
    """The outcome of walking the chain: ``ok``, how many records were checked, and the
    first broken link (its sequence number and what is wrong) when not ok."""

    ok: bool
    checked: int
    first_seq: int | None = None
    last_seq: int | None = None
    broken_seq: int | None = None
    problem: str = ""


def _state(conn: Connection, name: str) -> tuple[int, str] | None:
    row = conn.execute(
        select(audit_state.c.seq, audit_state.c.mac).where(audit_state.c.name == name)
    ).first()
    return None if row is None else (int(row.seq), str(row.mac))


def _records(engine: Engine, after: int) -> Iterator[AuditRecord]:
    """Every record after ``after``, in chain order, read in chunks."""
    last = after
    while True:
        with engine.connect() as conn:
            rows = conn.execute(
                select(audit_log)
                .where(audit_log.c.seq > last)
                .order_by(audit_log.c.seq)
                .limit(_CHUNK)
            ).all()
        if not rows:
            return
        for row in rows:
            yield record_of(row)
        last = int(rows[-1].seq)


def _anchor_named(engine: Engine, anchor: tuple[int, str]) -> bool:
    """A purge record (itself in the chain) names this anchor."""
    text = f"anchor {anchor[0]} {anchor[1]}"
    with engine.connect() as conn:
        found = conn.execute(
            select(audit_log.c.seq)
            .where(audit_log.c.action == "purge", audit_log.c.detail.contains(text))
            .limit(1)
        ).first()
    return found is not None


def verify_chain(engine: Engine, cipher: Cipher) -> ChainCheck:
    """Walks the chain from its start (or the purge anchor) to its head."""
    with engine.connect() as conn:
        anchor = _state(conn, "anchor")
        head = _state(conn, "head")
    expected_seq, prev = (anchor[0] + 1, anchor[1]) if anchor else (1, GENESIS)
    checked = 0
    first: int | None = None
    last: AuditRecord | None = None

    def broken(seq: int, problem: str) -> ChainCheck:
        intact = first if last is not None else None  # the records checked before it
        return ChainCheck(False, checked, intact, last.seq if last else None, seq, problem)

    if anchor is not None and not _anchor_named(engine, anchor):
        return broken(
            anchor[0] + 1,
            f"the purge anchor (record {anchor[0]}) is named by no "
            "purge record: records were deleted outside a purge",
        )
    for record in _records(engine, 0):
        if first is None:
            first = record.seq
        if record.seq != expected_seq:
            if record.seq > expected_seq:
                what = (
                    f"record {expected_seq} is missing"
                    if record.seq == expected_seq + 1
                    else f"records {expected_seq} to {record.seq - 1} are missing"
                )
                return broken(record.seq, f"{what} (deleted)")
            return broken(
                record.seq, f"record {record.seq} precedes the purge anchor {expected_seq - 1}"
            )
        mac = record_mac(cipher, record.prev_mac, record.seq, record.at, record.actor, record.entry)
        if mac != record.mac:
            return broken(
                record.seq,
                f"record {record.seq} does not match its MAC (edited, "
                "or moved from another place in the chain)",
            )
        if record.prev_mac != prev:
            return broken(
                record.seq,
                f"record {record.seq} does not link to record "
                f"{record.seq - 1} (a record before it was replaced or reordered)",
            )
        prev, expected_seq, last = record.mac, record.seq + 1, record
        checked += 1
    head_seq, head_mac = head if head else (0, GENESIS)
    if last is None and head_seq > (anchor[0] if anchor else 0):
        return broken(
            head_seq, f"the chain's head is record {head_seq} but no record is left (deleted)"
        )
    if last is not None and (head_seq, head_mac) != (last.seq, last.mac):
        return broken(
            last.seq + 1,
            f"the chain ends at record {last.seq} but its head is "
            f"record {head_seq}: the last records were deleted",
        )
    return ChainCheck(True, checked, first, last.seq if last else None)


def list_audit(
    engine: Engine,
    *,
    since: datetime | None = None,
    actor: str | None = None,
    action: str | None = None,
    limit: int | None = 200,
) -> list[AuditRecord]:
    """Records, newest first; ``actor`` matches the name exactly."""
    stmt = select(audit_log).order_by(audit_log.c.seq.desc())
    if since is not None:
        stmt = stmt.where(audit_log.c.at >= since)
    if actor is not None:
        stmt = stmt.where(audit_log.c.actor == actor)
    if action is not None:
        stmt = stmt.where(audit_log.c.action == action)
    if limit is not None:
        stmt = stmt.limit(limit)
    with engine.connect() as conn:
        return [record_of(r) for r in conn.execute(stmt)]


def audit_after(engine: Engine, seq: int, limit: int) -> list[AuditRecord]:
    """Up to ``limit`` records after ``seq``, oldest first (forwarding, export)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(audit_log).where(audit_log.c.seq > seq).order_by(audit_log.c.seq).limit(limit)
        ).all()
    return [record_of(r) for r in rows]


def audit_cursor(engine: Engine, name: str) -> int:
    """A forwarder's cursor: the last record it delivered (0: none yet)."""
    with engine.connect() as conn:
        state = _state(conn, name)
    return state[0] if state else 0


def set_audit_cursor(engine: Engine, name: str, seq: int) -> None:
    with engine.begin() as conn:
        upsert_state(conn, name, seq, "")


def hold_audit_lease(engine: Engine, name: str, owner: str, seconds: float) -> bool:
    """Takes or renews the lease ``name`` (one forwarder per trail across engine nodes):
    True when ``owner`` holds it for ``seconds`` more; its row keeps the expiry (epoch
    seconds) and the owner."""
    now = time.time()
    row_name = f"lease:{name}"
    with engine.begin() as conn:
        taken = conn.execute(
            update(audit_state)
            .where(
                audit_state.c.name == row_name,
                (audit_state.c.mac == owner) | (audit_state.c.seq < int(now)),
            )
            .values(seq=int(now + seconds), mac=owner[:64])
        ).rowcount
        if taken:
            return True
        if _state(conn, row_name) is None:
            insert_absent(conn, row_name, int(now + seconds), owner[:64])
            return _state(conn, row_name) == (int(now + seconds), owner[:64])
    return False


def purge_audit(
    engine: Engine, cipher: Cipher, before: datetime, actor: AuditActor, at: datetime
) -> int:
    """Deletes the records older than ``before`` (the purge's own record is appended in
    the same transaction, naming the new anchor); returns how many were deleted."""
    with engine.begin() as conn:
        lock_head(conn)
        last = conn.execute(
            select(audit_log.c.seq, audit_log.c.mac)
            .where(audit_log.c.at < before)
            .order_by(audit_log.c.seq.desc())
            .limit(1)
        ).first()
        if last is None:
            return 0
        seq, mac = int(last.seq), str(last.mac)
        count = int(
            conn.execute(
                select(func.count()).select_from(audit_log).where(audit_log.c.seq <= seq)
            ).scalar_one()
        )
        append(
            conn,
            cipher,
            actor,
            AuditEntry(
                "purge",
                target="audit trail",
                detail=f"{count} record(s) older than {before.isoformat(timespec='seconds')}Z "
                f"deleted; anchor {seq} {mac}",
            ),
            at,
        )
        conn.execute(delete(audit_log).where(audit_log.c.seq <= seq))
        upsert_state(conn, "anchor", seq, mac)
    return count
