"""What the admin socket answers: a registry of operations, each a blocking function.

Touches: DB (the raw read writes its audit record, committed, before decrypting).

An operation takes the store, the caller (as the kernel identified them) and the
request object, and returns the answer's fields; it raises :class:`BadRequest`
for a malformed request and :class:`eai.errors.EaiError` for anything the
caller should read.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from eai.admin._peer import Caller
from eai.errors import StoreError
from eai.store import AuditActor, Store, message_detail, read_raw

__all__ = ["OPERATIONS", "BadRequest", "Operation"]

Operation = Callable[[Store, Caller, dict[str, Any]], dict[str, Any]]
OPERATIONS: dict[str, Operation] = {}

_MAX_REASON = 200


class BadRequest(ValueError):
    """A request whose fields are missing or of the wrong kind."""


def _operation(name: str) -> Callable[[Operation], Operation]:
    def register(fn: Operation) -> Operation:
        OPERATIONS[name] = fn
        return fn

    return register


def _message_id(request: dict[str, Any]) -> int:
    value = request.get("message_id")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest("message_id must be a positive integer")
    return value


def _reason(request: dict[str, Any]) -> str:
    value = request.get("reason", "")
    if not isinstance(value, str):
        raise BadRequest("reason must be a string")
    text = " ".join(value.split())  # one line: no control characters in the record
    if len(text) > _MAX_REASON:
        raise BadRequest(f"reason is limited to {_MAX_REASON} characters")
    return text


@_operation("whoami")
def _whoami(_store: Store, caller: Caller, _request: dict[str, Any]) -> dict[str, Any]:
    """The caller as the engine sees them (what a record would name)."""
    return {"pid": caller.pid, "uid": caller.uid, "gid": caller.gid, "user": caller.user}


@_operation("raw")
def _raw(store: Store, caller: Caller, request: dict[str, Any]) -> dict[str, Any]:
    """A message's payload and journey; the ``raw_viewed`` record is committed first."""
    message_id = _message_id(request)
    reason = _reason(request)
    via = "through the engine's admin socket" + (f"; reason: {reason}" if reason else "")
    try:
        payload = read_raw(
            store.engine,
            store.cipher,
            message_id,
            reader=caller.describe(),
            via=via,
            actor=AuditActor(
                caller.user, "os-user", f"uid {caller.uid}, pid {caller.pid}", "admin-socket"
            ),
        )
    except SQLAlchemyError as exc:
        raise StoreError(
            f"the access could not be recorded ({type(exc).__name__}): nothing is shown"
        ) from exc
    view = message_detail(store.engine, message_id, store.cipher)
    return {
        "message": view.to_json(with_events=True),
        "payload": base64.b64encode(payload).decode("ascii"),
    }
