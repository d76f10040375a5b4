"""The audit trail's tables and its chain: append one record, linked to the one before.

Touches: DB (the caller's connection: an append runs inside the caller's transaction,
so the record commits with the action it describes, or not at all).

Each record carries ``mac = HMAC-SHA256(audit key, prev_mac | canonical record)``,
the audit key derived from the journal's master key (``Cipher.audit_mac``): a record
deleted, edited or moved breaks the chain (``_audit_chain.verify``). Appends are
serialised by the head row of ``audit_state`` (``UPDATE ... SET seq = seq + 1``
locks it: a row lock on PostgreSQL, the write lock on SQLite), so several writers
and several engine nodes keep one linear chain. ``audit_state`` also keeps the
anchor left by a purge and the SIEM forwarder's cursor.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Connection, Index, String, Table, Text, select, update

from eai.store._crypto import Cipher
from eai.store._schema import Id, Timestamp, metadata, patient_ids

__all__ = [
    "GENESIS",
    "AuditActor",
    "AuditEntry",
    "AuditRecord",
    "append",
    "audit_log",
    "audit_state",
    "canonical",
    "insert_absent",
    "lock_head",
    "record_mac",
    "upsert_state",
]

GENESIS = "0" * 64
"""The ``prev_mac`` of the first record ever written."""

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", Id, primary_key=True, autoincrement=False),
    Column("at", Timestamp, nullable=False),
    Column("actor", String(128), nullable=False),
    # os-user (the CLI, the admin socket), account (the console), engine, signal
    Column("actor_type", String(16), nullable=False),
    Column("peer", String(128), nullable=False, default=""),
    Column("via", String(64), nullable=False, default=""),
    Column("action", String(32), nullable=False),
    Column("target", String(256), nullable=False, default=""),
    Column("message_id", Id, nullable=True),
    # keyed hashes of the message's patient ids (as message_patient_ids), space-separated
    Column("patient", String(200), nullable=False, default=""),
    Column("outcome", String(16), nullable=False),
    Column("detail", Text, nullable=False, default=""),
    Column("prev_mac", String(64), nullable=False),
    Column("mac", String(64), nullable=False),
    Index("ix_audit_at", "at"),
    Index("ix_audit_actor", "actor"),
)

# name -> (seq, mac): "head" (the last record), "anchor" (the last purged one),
# "syslog" (the last record forwarded to the SIEM).
audit_state = Table(
    "audit_state",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("seq", Id, nullable=False),
    Column("mac", String(64), nullable=False),
)


@dataclass(frozen=True)
class AuditActor:
    """Who acted: ``name`` (an OS user as the kernel identified them, or a console
    account), its ``kind`` (os-user, account, engine, signal), ``peer`` (uid/pid, or a
    network address) and ``via`` (cli, admin-socket, break-glass, console, engine)."""

    name: str
    kind: str = "os-user"
    peer: str = ""
    via: str = ""

    def describe(self) -> str:
        peer = f" ({self.peer})" if self.peer else ""
        via = f" via {self.via}" if self.via else ""
        return f"{self.name}{peer}{via}"


@dataclass(frozen=True)
class AuditEntry:
    """What was done, to what, with which outcome; never a patient id in clear
    (``patient`` holds keyed hashes; a record about a message gets its own)."""

    action: str
    target: str = ""
    message_id: int | None = None
    patient: str = ""
    outcome: str = "success"
    detail: str = ""


@dataclass(frozen=True)
class AuditRecord:
    """One stored record of the trail."""

    seq: int
    at: datetime
    actor: AuditActor
    entry: AuditEntry
    prev_mac: str
    mac: str = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at.isoformat(timespec="microseconds") + "Z",
            "actor": asdict(self.actor),
            **asdict(self.entry),
            "prev_mac": self.prev_mac,
            "mac": self.mac,
        }


def canonical(seq: int, at: datetime, actor: AuditActor, entry: AuditEntry) -> bytes:
    """The bytes the MAC covers: every field, in a fixed order, as compact JSON."""
    fields = [
        1,  # the format's version
        seq,
        at.isoformat(timespec="microseconds"),
        actor.name,
        actor.kind,
        actor.peer,
        actor.via,
        entry.action,
        entry.target,
        entry.message_id,
        entry.patient,
        entry.outcome,
        entry.detail,
    ]
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def record_mac(
    cipher: Cipher, prev_mac: str, seq: int, at: datetime, actor: AuditActor, entry: AuditEntry
) -> str:
    return cipher.audit_mac(prev_mac.encode("ascii") + b"|" + canonical(seq, at, actor, entry))


def upsert_state(conn: Connection, name: str, seq: int, mac: str) -> None:
    """Sets a row of ``audit_state`` (created when absent)."""
    done = conn.execute(
        update(audit_state).where(audit_state.c.name == name).values(seq=seq, mac=mac)
    ).rowcount
    if not done:
        insert_absent(conn, name, seq, mac)
        conn.execute(update(audit_state).where(audit_state.c.name == name).values(seq=seq, mac=mac))


def insert_absent(conn: Connection, name: str, seq: int, mac: str) -> None:
    """Creates a state row unless another writer has (ON CONFLICT DO NOTHING)."""
    values = {"name": name, "seq": seq, "mac": mac}
    # the dialect's own insert, imported here: the other dialect's is never needed
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        conn.execute(pg_insert(audit_state).values(values).on_conflict_do_nothing())
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        conn.execute(sqlite_insert(audit_state).values(values).on_conflict_do_nothing())


def lock_head(conn: Connection) -> tuple[int, str]:
    """Takes the chain's head for this transaction (other appenders wait for its end)
    and returns its (seq, mac)."""
    row = conn.execute(
        update(audit_state)
        .where(audit_state.c.name == "head")
        .values(seq=audit_state.c.seq)
        .returning(audit_state.c.seq, audit_state.c.mac)
    ).first()
    if row is None:
        insert_absent(conn, "head", 0, GENESIS)
        return lock_head(conn)
    return int(row.seq), str(row.mac)


def _patients_of(conn: Connection, message_id: int) -> str:
    hashes = conn.execute(
        select(patient_ids.c.id_hash)
        .where(patient_ids.c.message_id == message_id)
        .order_by(patient_ids.c.id_hash)
    ).scalars()
    return " ".join(dict.fromkeys(hashes))[:200]


def append(
    conn: Connection, cipher: Cipher, actor: AuditActor, entry: AuditEntry, at: datetime
) -> AuditRecord:
    """Appends one record at the head of the chain, in ``conn``'s transaction.

    A record about a message with no ``patient`` gets the keyed hashes of the message's
    patient ids. The head stays locked until the transaction ends.
    """
    if entry.message_id is not None and not entry.patient:
        patient = _patients_of(conn, entry.message_id)
        if patient:
            entry = AuditEntry(**{**asdict(entry), "patient": patient})
    seq, prev_mac = lock_head(conn)
    seq += 1
    mac = record_mac(cipher, prev_mac, seq, at, actor, entry)
    conn.execute(
        audit_log.insert().values(
            seq=seq,
            at=at,
            actor=actor.name,
            actor_type=actor.kind,
            peer=actor.peer,
            via=actor.via,
            **asdict(entry),
            prev_mac=prev_mac,
            mac=mac,
        )
    )
    conn.execute(update(audit_state).where(audit_state.c.name == "head").values(seq=seq, mac=mac))
    return AuditRecord(seq, at, actor, entry, prev_mac, mac)


def record_of(row: Any) -> AuditRecord:
    """An :class:`AuditRecord` from a row of ``audit_log``."""
    return AuditRecord(
        seq=int(row.seq),
        at=row.at,
        actor=AuditActor(row.actor, row.actor_type, row.peer, row.via),
        entry=AuditEntry(
            row.action, row.target, row.message_id, row.patient, row.outcome, row.detail
        ),
        prev_mac=row.prev_mac,
        mac=row.mac,
    )
