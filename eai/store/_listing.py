"""Support queries on messages: listings with filters, one message's journey.

Touches: DB (short transactions of its own; safe while the engine runs).

A content type may add fields read from its payload (:class:`eai.registry.ListingSpec`,
e.g. ``dicom_router``'s Study, Series and SOP Instance UIDs): every listed message
carries every registered field, null when unknown or of another content type.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Row, Select, select

from eai.errors import NotFound, StoreError
from eai.registry import ListingSpec, listing_specs
from eai.store._crypto import Cipher
from eai.store._schema import ACTIVE_DELIVERY, deliveries, events, messages, patient_ids

__all__ = [
    "DeliveryView",
    "EventView",
    "MessageView",
    "list_messages",
    "message_detail",
]


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


class _Fields:
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


def _deliveries_of(engine: Engine, ids: Sequence[int]) -> dict[int, list[DeliveryView]]:
    out: dict[int, list[DeliveryView]] = {i: [] for i in ids}
    if not ids:
        return out
    with engine.connect() as conn:
        rows = conn.execute(
            select(deliveries)
            .where(deliveries.c.message_id.in_(list(ids)))
            .order_by(deliveries.c.id)
        ).all()
    for r in rows:
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


def _view(r: Row[Any], dl: list[DeliveryView], fields: dict[str, str | None]) -> MessageView:
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


_COLUMNS = [c for c in messages.c if c.name not in ("payload", "ack")]

SCAN_PAGE = 500
"""Rows read per page when a listing scans payloads (``where_field``)."""


def list_messages(
    engine: Engine,
    cipher: Cipher,
    *,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    listener: str | None = None,
    message_type: str | None = None,
    patient: str | None = None,
    where_field: tuple[str, str] | None = None,
    ids: Sequence[int] | None = None,
    limit: int | None = 100,
    oldest_first: bool = False,
    with_fields: bool = True,
    scan_page: int = SCAN_PAGE,
) -> list[MessageView]:
    """Messages matching every filter given, newest first (``oldest_first``: by arrival).

    Messages of a content type with listing fields carry them (``with_fields``; replay,
    which needs only ids, turns it off). These live in the encrypted payload: each listed
    payload of such a type is opened and only the fields are taken out (never patient
    data, so no ``raw_viewed`` event is recorded); the payload itself is never returned.

    ``where_field`` (name, value): only messages whose listing field ``name`` is ``value``
    (stripped). No clear column holds it, so the messages of the content types having that
    field that pass the other filters are scanned, newest first, in batches, until ``limit``
    match (``scan_page`` rows a read): narrow it with ``since`` on a large journal.
    """
    q = select(*_COLUMNS)
    if status:
        q = q.where(messages.c.status == status)
    if since:
        q = q.where(messages.c.received_at >= since)
    if until:
        q = q.where(messages.c.received_at <= until)
    if listener:
        q = q.where(messages.c.listener == listener)
    if message_type:
        q = q.where(
            messages.c.message_type.like(message_type.replace("*", "%"))
            if "*" in message_type
            else (messages.c.message_type == message_type)
            | messages.c.message_type.like(message_type + "^%")
        )
    if patient:
        q = q.where(
            messages.c.id.in_(
                select(patient_ids.c.message_id).where(
                    patient_ids.c.id_hash == cipher.hash_id(patient)
                )
            )
        )
    if ids is not None:
        q = q.where(messages.c.id.in_(list(ids)))
    reader = _Fields(cipher if with_fields or where_field is not None else None)
    if where_field is not None:
        name, value = where_field
        found = list(
            _scan(engine, reader, q, (name, value.strip()), limit, oldest_first, scan_page)
        )
        rows = [r for r, _ in found]
        values = {r.id: f for r, f in found}
    else:
        q = q.order_by(messages.c.id if oldest_first else messages.c.id.desc())
        if limit:
            q = q.limit(limit)
        with engine.connect() as conn:
            rows = list(conn.execute(q).all())
        readable = [r for r in rows if reader.readable(r.content_type)]
        values = _fields_of(engine, reader, readable, scan_page)
    dl = _deliveries_of(engine, [r.id for r in rows])
    return [_view(r, dl[r.id], values.get(r.id, dict(reader.none))) for r in rows]


def _fields_of(
    engine: Engine, reader: _Fields, rows: Sequence[Row[Any]], page: int = SCAN_PAGE
) -> dict[int, dict[str, str | None]]:
    out: dict[int, dict[str, str | None]] = {}
    types = {r.id: r.content_type for r in rows}
    ids = list(types)
    with engine.connect() as conn:
        for start in range(0, len(ids), page):
            part = ids[start : start + page]
            for mid, sealed in conn.execute(
                select(messages.c.id, messages.c.payload).where(messages.c.id.in_(part))
            ).all():
                out[mid] = reader.read(types[mid], sealed)
    return out


def _scan(
    engine: Engine,
    reader: _Fields,
    q: Select[Any],
    where: tuple[str, str],
    limit: int | None,
    oldest_first: bool,
    page_size: int,
) -> Iterator[tuple[Row[Any], dict[str, str | None]]]:
    """The rows of ``q`` whose listing field ``where[0]`` is ``where[1]``, in order, at
    most ``limit``.

    Keyset pages of ``page_size`` rows (one short read each, no transaction held across
    the decryption)."""
    name, value = where
    types = [t for t, s in reader.specs.items() if name in s.fields]
    if not types:
        return
    q = q.add_columns(messages.c.payload).where(messages.c.content_type.in_(types))
    q = q.order_by(messages.c.id if oldest_first else messages.c.id.desc()).limit(page_size)
    last: int | None = None
    found = 0
    while True:
        page = q
        if last is not None:
            page = q.where(messages.c.id > last if oldest_first else messages.c.id < last)
        with engine.connect() as conn:
            rows = conn.execute(page).all()
        for r in rows:
            fields = reader.read(r.content_type, r.payload)
            if fields.get(name) == value:
                yield r, fields
                found += 1
                if limit and found >= limit:
                    return
        if len(rows) < page_size:
            return
        last = rows[-1].id


def message_detail(engine: Engine, message_id: int, cipher: Cipher | None = None) -> MessageView:
    """One message with its deliveries and events; with ``cipher``, its listing fields
    too (as :func:`list_messages` reads them)."""
    with engine.connect() as conn:
        r = conn.execute(select(*_COLUMNS).where(messages.c.id == message_id)).first()
        if r is None:
            raise NotFound(f"no message with id {message_id}")
        evs = conn.execute(
            select(events).where(events.c.message_id == message_id).order_by(events.c.id)
        ).all()
    reader = _Fields(cipher)
    fields = dict(reader.none)
    if reader.readable(r.content_type):
        fields = _fields_of(engine, reader, [r]).get(message_id, fields)
    view = _view(r, _deliveries_of(engine, [message_id])[message_id], fields)
    view.events.extend(EventView(iso(e.at) or "", e.kind, e.detail, e.delivery_id) for e in evs)
    return view
