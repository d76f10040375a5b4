"""The journal's timestamps on SQLite, written as SQLAlchemy writes them, a C call each.

Touches: nothing (a column type; ``_schema`` uses it as the SQLite variant of its
``DateTime`` columns).

SQLAlchemy stores a ``DateTime`` in SQLite as the string
``YYYY-MM-DD HH:MM:SS.ffffff`` (its ``DATETIME`` storage format), built with a
``%``-format of seven attributes: ~1.3 us a value, a dozen values per message routed
(received_at, each event's ``at``, the leases, the deliveries' times).
``datetime.isoformat(" ", "microseconds")`` writes the same 26 characters for any
``datetime`` (the year is zero-padded to 4 digits in both; an offset, which SQLAlchemy
leaves out, is cut) in ~0.5 us. Anything else (a ``date``, ``None``, a wrong type) goes
through SQLAlchemy's own processor; reading is SQLAlchemy's (``fromisoformat``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Dialect
from sqlalchemy.dialects.sqlite import DATETIME

__all__ = ["DEFAULT_STORAGE", "SqliteTimestamp"]

DEFAULT_STORAGE = (
    "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d"
)
"""SQLAlchemy's storage format of a SQLite ``DATETIME`` (what the fast path writes)."""


class SqliteTimestamp(DATETIME):
    """``DATETIME`` with a faster writer of the default storage format."""

    cache_ok = True

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]

    def bind_processor(self, dialect: Dialect) -> Any:
        general = super().bind_processor(dialect)
        if self._storage_format != DEFAULT_STORAGE or general is None:
            return general

        def process(value: Any) -> Any:
            if type(value) is datetime:
                return value.isoformat(" ", "microseconds")[:26]
            return general(value)

        return process
