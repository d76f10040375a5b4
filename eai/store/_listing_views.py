"""What a message listing returns and how it is assembled, whatever runs the queries.

Touches: nothing (the queries are run by the caller's :class:`Queries`).

Two drivers run the listing's statements: SQLAlchemy (``_listing``, any journal) and, for
``eai messages list`` on a SQLite journal, the standard library's ``sqlite3`` with the
same statements compiled ahead of time (``_sqlite_read``, ``_listing_sql``). Both build
their rows into views here, with the same filters (:func:`message_filters`), so that the
two cannot disagree on what a listing holds; this module imports no SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from eai.errors import StoreError
from eai.registry import ListingSpec, listing_specs
from eai.store._crypto import Cipher
from eai.store._listing_sql import ACTIVE_DELIVERY

__all__ = [
    "SCAN_PAGE",
    "DeliveryView",
    "EventView",
    "FieldReader",
    "Filters",
    "MessageView",
    "Queries",
    "collect",
    "deliveries_of",
    "fields_of",
    "iso",
    "message_filters",
    "message_view",
]

SCAN_PAGE = 500
"""Rows read per page when a listing scans payloads (``where_field``)."""

Filters = list[tuple[str, dict[str, Any]]]
"""The filters of a listing: the name of each (a key of ``_listing.FILTERS``, a Core
expression with named bind parameters) and the values of its parameters."""


def iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.replace(tzinfo=UTC).isoformat()


@dataclass(frozen=True)
class DeliveryView:
    id: int
    destination: str
    status: str
    attempts: int
    route: str = ""
    last_error: str = ""
    next_attempt_at: str | None = None
    delivered_at: str | None = None
    resend_of: int | None = None
    follow_up_of: int | None = None
    """The delivery whose outcome made this one (a business acknowledgement...)."""

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "destination": self.destination,
            "status": self.status,
            "attempts": self.attempts,
            "route": self.route,
            "last_error": self.last_error,
            "next_attempt_at": self.next_attempt_at,
            "delivered_at": self.delivered_at,
            "resend_of": self.resend_of,
            "follow_up_of": self.follow_up_of,
        }


@dataclass(frozen=True)
class EventView:
    at: str
    kind: str
    detail: str
    delivery_id: int | None

    def to_json(self) -> dict[str, object]:
        return {
            "at": self.at,
            "kind": self.kind,
            "detail": self.detail,
            "delivery_id": self.delivery_id,
        }


@dataclass(frozen=True)
class MessageView:
    id: int
    received_at: str
    listener: str
    control_id: str
    message_type: str
    status: str
    sending_application: str
    sending_facility: str
    size: int
    routes: str
    reject_reason: str
    deliveries: list[DeliveryView] = field(default_factory=list)
    events: list[EventView] = field(default_factory=list)
    content_type: str = ""
    fields: dict[str, str | None] = field(default_factory=dict)
    """The registered listing fields (:class:`eai.registry.ListingSpec`), None = unknown."""

    def to_json(self, with_events: bool = False) -> dict[str, object]:
        out: dict[str, object] = {
            "id": self.id,
            "received_at": self.received_at,
            "listener": self.listener,
            "content_type": self.content_type,
            "control_id": self.control_id,
            "message_type": self.message_type,
            "status": self.status,
            **self.fields,
            "sending_application": self.sending_application,
            "sending_facility": self.sending_facility,
            "size": self.size,
            "routes": [r for r in self.routes.split(",") if r],
            "reject_reason": self.reject_reason,
            "deliveries": [d.to_json() for d in self.deliveries],
        }
        if with_events:
            out["events"] = [e.to_json() for e in self.events]
        return out


class FieldReader:
    """The registered listing fields and how to read them from a sealed payload."""

    def __init__(self, cipher: Cipher | None) -> None:
        self.cipher = cipher
        self.specs: dict[str, ListingSpec] = listing_specs()
        self.names = tuple(dict.fromkeys(n for s in self.specs.values() for n in s.fields))
        self.none: dict[str, str | None] = dict.fromkeys(self.names)

    def readable(self, content_type: str) -> bool:
        return self.cipher is not None and content_type in self.specs

    def read(self, content_type: str, sealed: bytes) -> dict[str, str | None]:
        """The fields of one message; unknown ones (or all, when its payload cannot be
        opened or read) are None: a listing never fails on one row."""
        spec = self.specs.get(content_type)
        if spec is None or self.cipher is None:
            return dict(self.none)
        try:
            values: Mapping[str, str | None] = spec.read(self.cipher.open(sealed))
        except (StoreError, ValueError):
            values = {}
        return {
            n: (v if n in spec.fields and isinstance(v := values.get(n), str) else None)
            for n in self.names
        }


def message_filters(
    cipher: Cipher,
    *,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    listener: str | None = None,
    message_type: str | None = None,
    patient: str | None = None,
    ids: Sequence[int] | None = None,
) -> Filters:
    """The filters of :func:`eai.store.list_messages`' arguments (those given)."""
    out: Filters = []
    if status:
        out.append(("status", {"status": status}))
    if since:
        out.append(("since", {"since": since}))
    if until:
        out.append(("until", {"until": until}))
    if listener:
        out.append(("listener", {"listener": listener}))
    if message_type:
        if "*" in message_type:
            out.append(("type_pattern", {"type_pattern": message_type.replace("*", "%")}))
        else:  # the type itself, or any of its events (ADT: ADT^A01, ADT^A08...)
            out.append(("type", {"message_type": message_type, "type_prefix": message_type + "^%"}))
    if patient:
        out.append(("patient", {"patient_hash": cipher.hash_id(patient)}))
    if ids is not None:
        out.append(("ids", {"ids": list(ids)}))
    return out


class Queries(Protocol):
    """The listing's reads, run by one driver. Rows have the columns as attributes."""

    def messages(self, filters: Filters, oldest_first: bool, limit: int | None) -> Sequence[Any]:
        """The messages' rows (all columns but ``payload`` and ``ack``), by id."""

    def payloads(self, ids: Sequence[int]) -> Iterable[tuple[int, bytes]]:
        """``(id, sealed payload)`` of these messages."""

    def deliveries(self, ids: Sequence[int]) -> Iterable[Any]:
        """The deliveries' rows of these messages, by id."""


def deliveries_of(queries: Queries, ids: Sequence[int]) -> dict[int, list[DeliveryView]]:
    out: dict[int, list[DeliveryView]] = {i: [] for i in ids}
    if not ids:
        return out
    for r in queries.deliveries(ids):
        out[r.message_id].append(
            DeliveryView(
                r.id,
                r.destination,
                r.status,
                r.attempts,
                r.route,
                r.last_error,
                iso(r.next_attempt_at) if r.status in ACTIVE_DELIVERY else None,
                iso(r.delivered_at),
                r.resend_of,
                r.follow_up_of,
            )
        )
    return out


def fields_of(
    queries: Queries, reader: FieldReader, rows: Sequence[Any], page: int = SCAN_PAGE
) -> dict[int, dict[str, str | None]]:
    out: dict[int, dict[str, str | None]] = {}
    types = {r.id: r.content_type for r in rows}
    ids = list(types)
    for start in range(0, len(ids), page):
        for mid, sealed in queries.payloads(ids[start : start + page]):
            out[mid] = reader.read(types[mid], sealed)
    return out


def message_view(r: Any, dl: list[DeliveryView], fields: dict[str, str | None]) -> MessageView:
    return MessageView(
        r.id,
        iso(r.received_at) or "",
        r.listener,
        r.control_id,
        r.message_type,
        r.status,
        r.sending_application,
        r.sending_facility,
        r.size,
        r.routes,
        r.reject_reason,
        dl,
        content_type=r.content_type,
        fields=fields,
    )


def collect(
    queries: Queries,
    reader: FieldReader,
    filters: Filters,
    *,
    limit: int | None,
    oldest_first: bool,
    page: int = SCAN_PAGE,
) -> list[MessageView]:
    """The views of the messages matching ``filters``: their rows, the listing fields of
    those of a content type having some, their deliveries."""
    rows = list(queries.messages(filters, oldest_first, limit))
    readable = [r for r in rows if reader.readable(r.content_type)]
    values = fields_of(queries, reader, readable, page)
    dl = deliveries_of(queries, [r.id for r in rows])
    return [message_view(r, dl[r.id], values.get(r.id, dict(reader.none))) for r in rows]
