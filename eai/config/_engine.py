"""The ``engine:`` section of ``routes.yaml``: where data lives and how work is batched.

Touches: nothing (``effective_node_id`` asks the OS for the host name).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from eai.config._base import _NAME, Duration, Model
from eai.config._journal import DATABASE_SCHEMES as _DATABASE_SCHEMES
from eai.config._journal import DEFAULT_DATA_DIR as _DEFAULT_DATA_DIR
from eai.config._journal import default_database as _sqlite_url

__all__ = ["EngineConfig"]


class EngineConfig(Model):
    """Process-wide settings; every key has a default."""

    data_dir: Path = Field(
        default=Path(_DEFAULT_DATA_DIR),
        description="directory for the journal, keys and spool files",
        examples=["./var", "/var/lib/eai"],
    )
    database: str = Field(
        default=_sqlite_url(_DEFAULT_DATA_DIR),
        repr=False,  # may hold a password
        description="SQLAlchemy URL of the journal: sqlite:///<path> or "
        "postgresql+psycopg://<user>:<password>@<host>/<db>; default sqlite:///<data_dir>/eai.db",
        examples=["sqlite:///./var/eai.db", "postgresql+psycopg://eai@db.example.org/eai"],
    )
    node_id: str | None = Field(
        default=None,
        pattern=_NAME,
        description="name of this engine process in leases; default: the host name",
        examples=["eai-1"],
    )
    pipeline_batch: int = Field(
        default=200, ge=1, le=100_000, description="received messages processed per transaction"
    )
    plan_processes: int = Field(
        default=0,
        ge=0,
        le=64,
        description="worker processes that plan the pipeline's batches (decrypt, parse, map, "
        "check, seal), off the engine process's GIL; 0: a thread of the engine. Worth it when "
        "mappings are heavy (CR-BIO to FHIR: 5-15 ms a report) and cores are free; each "
        "worker takes about 100 MB",
        examples=[0, 2],
    )
    delivery_batch: int = Field(
        default=200, ge=1, le=100_000, description="outbox items claimed per delivery round"
    )
    batch_wait: Duration = Field(
        default=0.1,
        ge=0,
        le=5,
        description="after a batch that was not full, the pipeline and each delivery worker "
        "take the next one this long after the start of the last: under load each "
        "transaction carries many messages (fewer commits, more throughput), at the cost "
        "of up to this much latency per stage",
        examples=["100ms", "10ms"],
    )
    ingest_first: Duration = Field(
        default=0.2,
        ge=0,
        le=5,
        description="SQLite: while a listener serving in its own process (own_process) "
        "journals a burst, the pipeline waits up to this long before each batch, so that the "
        "listener's commits and ACKs do not wait behind the pipeline's transactions; the "
        "journal holds the backlog, worked through between bursts and at least one batch per "
        "this interval; 0: the pipeline never waits (nor on PostgreSQL)",
        examples=["200ms", "0s"],
    )
    lease: Duration = Field(
        default=60.0, gt=0, description="how long a claimed outbox item stays reserved to this node"
    )
    admin_socket: Path | None = Field(
        default=None,
        description="Unix socket of the running engine for audited reads of health data "
        "(eai messages show --raw); default <data_dir>/admin.sock",
        examples=["/run/eai/admin.sock"],
    )
    admin_group: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$",
        description="Unix group whose members may use the admin socket (socket 0660, its "
        "directory traversable by the group); default: the engine's user only (0600)",
        examples=["eai-support"],
    )

    @model_validator(mode="before")
    @classmethod
    def _default_database(cls, data: Any) -> Any:
        if isinstance(data, dict) and "database" not in data:
            data_dir = data.get("data_dir", _DEFAULT_DATA_DIR)
            if isinstance(data_dir, str | Path):
                return {**data, "database": _sqlite_url(str(data_dir))}
        return data

    @field_validator("database")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(_DATABASE_SCHEMES) or value in _DATABASE_SCHEMES:
            # never echo the value: it may carry a password
            raise ValueError(
                "use sqlite:///<path> or postgresql+psycopg://<user>@<host>/<database>"
            )
        return value

    def admin_socket_path(self) -> Path:
        """``admin_socket``, or ``<data_dir>/admin.sock``."""
        return self.admin_socket or self.data_dir / "admin.sock"

    def effective_node_id(self) -> str:
        """``node_id``, or the host name when it is not set."""
        return self.node_id or socket.gethostname()
