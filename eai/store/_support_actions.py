"""Support actions from the CLI: read a payload (recorded), replay, resend, pause, release.

Touches: DB (short transactions of its own; safe while the engine runs).

Every action writes an event naming who did it (the process's real user, or the
reader the kernel identified on the admin socket) and an audit record (``_audit``)
in the transaction that does it: no action without its record, no record of an
action that did not happen.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Sequence

from sqlalchemy import Connection, Engine, insert, select, update

from eai.errors import EaiError, NotFound
from eai.store._audit import AuditActor, AuditEntry, append
from eai.store._bodies import DELIVERY_PAYLOAD, MESSAGE_PAYLOAD, set_aside, store_delivery_bodies
from eai.store._crypto import Cipher
from eai.store._journal import utcnow
from eai.store._outbox import INSERT_EVENTS, release_deliveries
from eai.store._plans import MessagePlan, apply_plans
from eai.store._schema import deliveries, destination_state, events, messages

__all__ = [
    "cli_actor",
    "read_raw",
    "record_read",
    "release",
    "replay_plans",
    "resend",
    "set_paused",
]


def _real_user() -> str:
    """This process's user by its real uid (never ``$USER``, which anyone can set)."""
    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid-{uid}"


def cli_actor() -> AuditActor:
    """The person running this process, by its real uid: the CLI's actor."""
    return AuditActor(_real_user(), "os-user", f"uid {os.getuid()}, pid {os.getpid()}", "cli")


def _audit(
    conn: Connection, cipher: Cipher, actor: AuditActor | None, entry: AuditEntry
) -> AuditActor:
    actor = actor or cli_actor()
    append(conn, cipher, actor, entry, utcnow())
    return actor


def read_raw(
    engine: Engine,
    cipher: Cipher,
    message_id: int,
    *,
    reader: str,
    via: str,
    actor: AuditActor | None = None,
) -> bytes:
    """The payload in clear, once its access is recorded: the ``raw_viewed`` event naming
    ``reader`` (as the kernel identified them) and ``via``, and the ``read-raw`` audit
    record of ``actor`` (default: ``reader`` via ``via``), are committed before the payload
    is decrypted; if the record cannot be written, nothing is returned.

    This is the one function that decrypts a journaled payload for a person."""
    actor = actor or AuditActor(reader, "os-user", "", via)
    with engine.begin() as conn:
        sealed = conn.execute(select(MESSAGE_PAYLOAD).where(messages.c.id == message_id)).scalar()
        if sealed is None:
            raise NotFound(f"no message with id {message_id}")
        record_read(conn, cipher, actor, message_id, reader=reader, via=via)
    return cipher.open(sealed)


def record_read(
    conn: Connection,
    cipher: Cipher,
    actor: AuditActor,
    message_id: int,
    delivery_id: int | None = None,
    *,
    reader: str,
    via: str,
) -> None:
    """Records, in ``conn``'s transaction, that ``reader`` (as the kernel or the console
    identified them) is shown message ``message_id``'s payload, or delivery
    ``delivery_id``'s output, ``via`` (how, and why): the ``raw_viewed`` event and the
    ``read-raw`` audit record of ``actor``. The caller decrypts only once this transaction
    is committed: the one rule for every read of health data in clear
    (:func:`read_raw`, :func:`eai.store.read_delivery`)."""
    now = utcnow()
    shown = "payload" if delivery_id is None else f"delivery {delivery_id}'s output"
    conn.execute(
        insert(events).values(
            at=now,
            message_id=message_id,
            delivery_id=delivery_id,
            kind="raw_viewed",
            detail=f"{shown} shown to {reader} {via}",
        )
    )
    target = f"message {message_id}" + ("" if delivery_id is None else f" delivery {delivery_id}")
    append(conn, cipher, actor, AuditEntry("read-raw", target, message_id, detail=via), now)


def replay_plans(
    engine: Engine,
    plans: Sequence[MessagePlan],
    *,
    config_path: str,
    config_sha256: str,
    cipher: Cipher,
    actor: AuditActor | None = None,
) -> list[int]:
    """Applies the plans of messages replayed through the config at ``config_path`` (its
    file's SHA-256 ``config_sha256``), in one transaction: each message gets a ``replayed``
    event naming who replayed it, its status before and the config, then its new plan's
    events and deliveries, and a ``replay`` audit record of ``actor`` (default: this
    process's user). Anomalies the message already has are not recorded (nor
    mailed) again (:func:`apply_plans`). Returns the ids of the deliveries created."""
    if not plans:
        return []
    now = utcnow()
    actor = actor or cli_actor()
    who = actor.name
    with engine.begin() as conn:
        before: dict[int, str] = {
            r.id: r.status
            for r in conn.execute(
                select(messages.c.id, messages.c.status).where(
                    messages.c.id.in_({p.message_id for p in plans})
                )
            )
        }
        conn.execute(
            INSERT_EVENTS,
            [
                {
                    "at": now,
                    "message_id": p.message_id,
                    "kind": "replayed",
                    "detail": f"by {who} (was {before.get(p.message_id, '?')}) with "
                    f"{config_path} sha256:{config_sha256}",
                }
                for p in plans
            ],
        )
        for p in plans:
            entry = AuditEntry(
                "replay",
                f"message {p.message_id}",
                p.message_id,
                detail=f"with {config_path} sha256:{config_sha256}",
            )
            _audit(conn, cipher, actor, entry)
        return apply_plans(conn, plans, now, replay=True, only_received=False)


def resend(
    engine: Engine,
    delivery_ids: Sequence[int],
    *,
    cipher: Cipher,
    actor: AuditActor | None = None,
) -> list[int]:
    """Queues each delivery again, as it was (same payload, same destination); each one
    gets a ``resend`` audit record of ``actor`` (default: this process's user)."""
    actor = actor or cli_actor()
    created: list[int] = []
    now = utcnow()
    with engine.begin() as conn:
        for did in delivery_ids:
            r = conn.execute(
                select(deliveries, DELIVERY_PAYLOAD.label("own_payload")).where(
                    deliveries.c.id == did
                )
            ).first()
            if r is None:
                raise NotFound(f"no delivery with id {did}")
            row = {
                "message_id": r.message_id,
                "destination": r.destination,
                "route": r.route,
                "patient_key": r.patient_key,
                "control_id": r.control_id,
                "status": "pending",
                "attempts": 0,
                "created_at": now,
                "next_attempt_at": now,
                "last_error": "",
                "payload": r.own_payload,
                "media_type": r.media_type,
                "mapping": r.mapping,
                "facts": r.facts,
                "return_to": r.return_to,
                "follow_up_of": r.follow_up_of,
                "resend_of": r.id,
            }
            aside = set_aside([row])
            new_id = conn.execute(
                insert(deliveries).values(row).returning(deliveries.c.id)
            ).scalar_one()
            store_delivery_bodies(conn, [new_id], aside)
            conn.execute(
                insert(events).values(
                    at=now,
                    message_id=r.message_id,
                    delivery_id=new_id,
                    kind="resent",
                    detail=f"delivery {did} to {r.destination} queued again as {new_id} "
                    f"by {actor.name}",
                )
            )
            entry = AuditEntry(
                "resend",
                f"delivery {did}",
                r.message_id,
                detail=f"to {r.destination}, queued again as delivery {new_id}",
            )
            _audit(conn, cipher, actor, entry)
            created.append(new_id)
    return created


def set_paused(
    engine: Engine, name: str, paused: bool, *, cipher: Cipher, actor: AuditActor | None = None
) -> None:
    """Pauses or resumes a destination; a ``pause`` / ``resume`` audit record of ``actor``
    (default: this process's user) goes with it."""
    actor = actor or cli_actor()
    now = utcnow()
    with engine.begin() as conn:
        done = conn.execute(
            update(destination_state)
            .where(destination_state.c.name == name)
            .values(paused=paused, updated_at=now)
        ).rowcount
        if not done:
            conn.execute(insert(destination_state).values(name=name, paused=paused, updated_at=now))
        conn.execute(
            insert(events).values(
                at=now,
                kind="paused" if paused else "resumed",
                detail=f"destination {name} by {actor.name}",
            )
        )
        _audit(
            conn, cipher, actor, AuditEntry("pause" if paused else "resume", f"destination {name}")
        )


def release(
    engine: Engine,
    delivery_ids: Sequence[int],
    *,
    cipher: Cipher,
    actor: AuditActor | None = None,
) -> int:
    """An operator releases held deliveries (the identity was checked by hand); each one
    gets an ``identity-release`` audit record of ``actor`` (default: this process's user)."""
    actor = actor or cli_actor()
    now = utcnow()
    with engine.begin() as conn:
        rows = conn.execute(
            select(deliveries.c.id, deliveries.c.message_id, deliveries.c.status).where(
                deliveries.c.id.in_(list(delivery_ids))
            )
        ).all()
        found = {r.id: r for r in rows}
        for did in delivery_ids:
            if did not in found:
                raise NotFound(f"no delivery with id {did}")
            if found[did].status != "held":
                raise EaiError(f"delivery {did} is {found[did].status}, not held")
        who = f"released by {actor.name}"
        release_deliveries(conn, [(d, found[d].message_id, who) for d in delivery_ids], now)
        for did in delivery_ids:
            entry = AuditEntry("identity-release", f"delivery {did}", found[did].message_id)
            _audit(conn, cipher, actor, entry)
    return len(delivery_ids)
