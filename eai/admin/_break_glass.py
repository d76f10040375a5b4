"""The break-glass read: root opens the key itself when the engine cannot answer, on record.

Touches: files (the key), DB (the ``raw_viewed`` record, committed before the payload
is decrypted).

The uid is the process's real uid (``os.getuid()``), never an environment
variable; anyone else is refused before the key is read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eai.admin._client import AdminRefused
from eai.admin._peer import local_caller
from eai.config import Config
from eai.store import AuditActor, Store, message_detail, read_raw

__all__ = ["break_glass_read"]


def break_glass_read(
    config: Config, message_id: int, reason: str, key: str | None, *, uid: int | None = None
) -> tuple[dict[str, Any], bytes]:
    """The message's journey (JSON) and payload, read with the key directly; ``uid``
    stands for ``os.getuid()`` in tests."""
    caller = local_caller(uid)
    if caller.uid != 0:
        raise AdminRefused(
            f"--break-glass is for root only (uid 0), not {caller.describe()}: read "
            "payloads through the running engine (eai messages show ID --raw)"
        )
    reason = " ".join(reason.split())
    via = "by break-glass (direct key access, the engine bypassed)" + (
        f"; reason: {reason}" if reason else ""
    )
    store = Store(config.engine.database, Path(config.engine.data_dir), key)
    try:
        payload = read_raw(
            store.engine,
            store.cipher,
            message_id,
            reader=caller.describe(),
            via=via,
            actor=AuditActor(
                caller.user, "os-user", f"uid {caller.uid}, pid {caller.pid}", "break-glass"
            ),
        )
        view = message_detail(store.engine, message_id, store.cipher)
    finally:
        store.engine.dispose()
    return view.to_json(with_events=True), payload
