"""The engine nodes sharing one journal: who is alive, whose leases are whose.

Touches: DB (each function runs in a transaction given by the caller).

Each running engine process registers a row in ``eai_nodes``: its lease owner id (unique
per process), its name (``engine.node_id`` or the host name), host and pid. It refreshes
its heartbeat every :data:`HEARTBEAT_EVERY` seconds, on the database's clock (nodes on
several hosts need no synchronised clocks). A node whose heartbeat is older than
:data:`DEAD_AFTER` seconds is dead: any live node releases its leases (the messages its
pipeline had claimed, the deliveries its workers had claimed) and removes its row, so a
node killed with ``kill -9`` holds up its own in-flight work for a few seconds instead of
``engine.lease``.

A node that only stalled past :data:`DEAD_AFTER` (a frozen VM) loses its leases like a
dead one: what it was sending may be sent again by another node (at least once, as
after any crash); its next heartbeat registers it again.

The oldest live node is the leader: the periodic jobs run there only
(:func:`is_leader`), each also under an advisory try-lock (:func:`try_job_lock`) for
the moment leadership moves.
"""

from __future__ import annotations

import os
import socket
import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, select, text, update

from eai.store._claims import lock_claims
from eai.store._schema import deliveries, messages, nodes

__all__ = [
    "DEAD_AFTER",
    "HEARTBEAT_EVERY",
    "LiveNode",
    "heartbeat",
    "is_leader",
    "lease_owner_id",
    "live_named",
    "register_node",
    "release_dead",
    "release_job_lock",
    "try_job_lock",
    "unregister_node",
]

HEARTBEAT_EVERY = 0.5
DEAD_AFTER = 3.0

# The database's clock, in UTC, as the journal's naive datetimes.
_DB_NOW = text("timezone('utc', now())")


def _fresh_since() -> Any:
    return _DB_NOW - func.make_interval(0, 0, 0, 0, 0, 0, DEAD_AFTER)


_DEAD = select(nodes.c.id).where(nodes.c.heartbeat_at < _fresh_since())


def _db_now(conn: Connection) -> datetime:
    value: datetime = conn.execute(select(_DB_NOW)).scalar_one()
    return value


def lease_owner_id(name: str) -> str:
    """This process's lease owner id: its node name, pid and a random part, so no two
    processes ever share their leases (two nodes on one host without ``engine.node_id``
    once did, and each took the other's leases for its own)."""
    return f"{name[:100]}/{os.getpid()}/{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True, slots=True)
class LiveNode:
    id: str
    host: str
    pid: int
    age: float
    """Seconds since its last heartbeat."""


_NAME_LOCK = zlib.crc32(b"eai:node-names")


def live_named(conn: Connection, name: str) -> LiveNode | None:
    """A node registered under the name ``name`` whose heartbeat is fresh (a process
    running elsewhere with the same ``engine.node_id``), the freshest first. Serialised
    with other starting nodes (a lock until the commit): register in the same
    transaction."""
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _NAME_LOCK})
    now = _db_now(conn)
    row = conn.execute(
        select(nodes.c.id, nodes.c.host, nodes.c.pid, nodes.c.heartbeat_at)
        .where(nodes.c.name == name)
        .order_by(nodes.c.heartbeat_at.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    age = (now - row.heartbeat_at).total_seconds()
    return LiveNode(row.id, row.host, row.pid, age) if age < DEAD_AFTER else None


def register_node(conn: Connection, node_id: str, name: str) -> None:
    """This process is the lease owner ``node_id``, named ``name``, from now on."""
    # imported here: the PostgreSQL dialect's module costs about 0.1 s of an engine's start
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    now = _db_now(conn)
    values = {
        "id": node_id,
        "name": name[:128],
        "host": socket.gethostname()[:128],
        "pid": os.getpid(),
        "started_at": now,
        "heartbeat_at": now,
    }
    stmt = pg_insert(nodes).values(**values)
    conn.execute(stmt.on_conflict_do_update(index_elements=[nodes.c.id], set_=values))


def heartbeat(conn: Connection, node_id: str, name: str) -> bool:
    """Refreshes this node's heartbeat; False when its row was gone (another node took it
    for dead and released its leases): it is registered again."""
    done = conn.execute(
        update(nodes).where(nodes.c.id == node_id).values(heartbeat_at=_DB_NOW)
    ).rowcount
    if done:
        return True
    register_node(conn, node_id, name)
    return False


def unregister_node(conn: Connection, node_id: str) -> None:
    """A clean stop: the row goes (its leases were released by the workers' ends)."""
    conn.execute(delete(nodes).where(nodes.c.id == node_id))


def release_dead(conn: Connection) -> list[str]:
    """Releases the leases of every node whose heartbeat is older than
    :data:`DEAD_AFTER`, removes their rows, and returns their ids. Leases of owners that
    never registered (older versions) are left to expire."""
    dead = list(conn.execute(_DEAD).scalars())
    if not dead:
        return []
    lock_claims(conn)  # as a claim: the claims see the leases before or after, whole
    for table in (messages, deliveries):
        conn.execute(
            update(table)
            .where(table.c.lease_owner.in_(dead))
            .values(lease_owner=None, lease_until=None)
        )
    conn.execute(delete(nodes).where(nodes.c.id.in_(dead)))
    return dead


def is_leader(conn: Connection, node_id: str) -> bool:
    """True when ``node_id`` is the oldest live node (ties broken by id)."""
    first = conn.execute(
        select(nodes.c.id)
        .where(nodes.c.heartbeat_at >= _fresh_since())
        .order_by(nodes.c.started_at, nodes.c.id)
        .limit(1)
    ).scalar()
    return first is None or first == node_id


def _job_key(name: str) -> int:
    return zlib.crc32(f"eai:job:{name}".encode())


def try_job_lock(conn: Connection, name: str) -> bool:
    """A session-level advisory try-lock for the periodic job ``name``: held by
    ``conn`` (outside any transaction of its own) until :func:`release_job_lock`."""
    got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _job_key(name)})
    return bool(got.scalar())


def release_job_lock(conn: Connection, name: str) -> None:
    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _job_key(name)})
