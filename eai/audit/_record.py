"""Writing one audit record: the function every auditable action calls.

Touches: DB (appends to the audit trail, in the caller's transaction or its own).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

from sqlalchemy import Connection

from eai.audit._actions import OUTCOMES, action_spec
from eai.store import AuditActor, AuditEntry, AuditRecord, Store, append_audit, cli_actor, utcnow

__all__ = ["account", "caller_actor", "engine_actor", "os_user", "record", "reload_recorder"]


def os_user() -> AuditActor:
    """The person running this process (the CLI), by its real uid, never ``$USER``."""
    return cli_actor()


def caller_actor(user: str, uid: int, pid: int, via: str = "admin-socket") -> AuditActor:
    """A local caller as the kernel identified them (``SO_PEERCRED`` on the admin socket)."""
    return AuditActor(user, "os-user", f"uid {uid}, pid {pid}", via)


def account(name: str, peer: str = "", via: str = "console") -> AuditActor:
    """A console account, with the address it connects from."""
    return AuditActor(name, "account", peer, via)


def engine_actor(node_id: str | None = None, via: str = "engine") -> AuditActor:
    """The engine itself (a scheduled purge, a reload by signal)."""
    return AuditActor(node_id or socket.gethostname(), "engine", f"pid {os.getpid()}", via)


def record(
    store: Store,
    actor: AuditActor | str,
    action: str,
    *,
    target: str = "",
    message_id: int | None = None,
    patient: str = "",
    outcome: str = "success",
    detail: str = "",
    conn: Connection | None = None,
) -> AuditRecord:
    """Appends one record to the audit trail and returns it.

    ``actor``: an :class:`eai.store.AuditActor` (:func:`os_user`, :func:`caller_actor`,
    :func:`account`, :func:`engine_actor`), or a console account name. ``action``: one
    of :data:`eai.audit.ACTIONS`. ``patient``: keyed hashes only
    (``store.cipher.hash_id``), never an identifier in clear; a record with a
    ``message_id`` gets the message's own. ``detail``: one line, no patient data.
    With ``conn`` the record joins that transaction (it commits with the action it
    describes); without, it is committed before this returns.
    """
    action_spec(action)
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}")
    who = account(actor) if isinstance(actor, str) else actor
    entry = AuditEntry(action, target, message_id, patient, outcome, " ".join(detail.split()))
    if conn is not None:
        return append_audit(conn, store.cipher, who, entry, utcnow())
    with store.engine.begin() as own:
        return append_audit(own, store.cipher, who, entry, utcnow())


def reload_recorder(
    store: Store, actor: AuditActor, detail: str, outcome: str
) -> Callable[[Connection], AuditRecord]:
    """The ``config-reload`` record of a reload, to write in the transaction of its
    journal event (the engine's writer thread)."""
    return lambda conn: record(
        store,
        actor,
        "config-reload",
        target="routes.yaml",
        outcome=outcome,
        detail=detail,
        conn=conn,
    )
