"""Engine-wide events: those of no message, such as each reload of routes.yaml.

Touches: DB (one short read transaction; safe while the engine runs).

The engine journals a reload, applied or refused, as an ``events`` row with no message
and no delivery (``config_reloaded`` / ``config_reload_refused``: who, the file and its
SHA-256, the summary or the issues); ``eai events list`` reads them here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, select

from eai.store._schema import events

__all__ = ["ENGINE_EVENT_KINDS", "EngineEvent", "engine_events"]

ENGINE_EVENT_KINDS = ("config_reloaded", "config_reload_refused")
"""The kinds of engine-wide events the engine writes today."""


@dataclass(frozen=True, slots=True)
class EngineEvent:
    id: int
    at: datetime  # naive UTC, as the journal keeps it
    kind: str
    detail: str

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "at": self.at.replace(tzinfo=UTC).isoformat(),
            "kind": self.kind,
            "detail": self.detail,
        }


def engine_events(
    engine: Engine,
    *,
    kinds: tuple[str, ...] = (),
    since: datetime | None = None,
    limit: int = 50,
) -> list[EngineEvent]:
    """The latest engine-wide events, newest first: of ``kinds`` (all when empty), at or
    after ``since`` (naive UTC), at most ``limit``."""
    query = select(events.c.id, events.c.at, events.c.kind, events.c.detail).where(
        events.c.message_id.is_(None), events.c.delivery_id.is_(None)
    )
    if kinds:
        query = query.where(events.c.kind.in_(kinds))
    if since is not None:
        query = query.where(events.c.at >= since)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(events.c.id.desc()).limit(limit)).all()
    return [EngineEvent(r.id, r.at, r.kind, r.detail) for r in rows]
