"""Support queries on messages: listings with filters, one message's journey.

Touches: DB (short transactions of its own; safe while the engine runs).

A content type may add fields read from its payload (:class:`eai.registry.ListingSpec`,
e.g. ``dicom_router``'s Study, Series and SOP Instance UIDs): every listed message
carries every registered field, null when unknown or of another content type.

The statements are here, in SQLAlchemy Core; the views and how they are assembled in
``_listing_views``. ``eai messages list`` on a SQLite journal runs the same statements
compiled ahead of time (``_sql_ahead`` writes them to ``_listing_sql``) through
``sqlite3``, without importing SQLAlchemy (``_sqlite_read``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Integer,
    Row,
    Select,
    TextClause,
    and_,
    bindparam,
    select,
)

from eai.errors import NotFound
from eai.store._bodies import MESSAGE_PAYLOAD
from eai.store._crypto import Cipher
from eai.store._listing_views import (
    SCAN_PAGE,
    DeliveryView,
    EventView,
    FieldReader,
    Filters,
    MessageView,
    collect,
    deliveries_of,
    fields_of,
    iso,
    message_filters,
    message_view,
)
from eai.store._schema import deliveries, events, messages, patient_ids

__all__ = [
    "DeliveryView",
    "EventView",
    "MessageView",
    "list_messages",
    "message_detail",
]

_COLUMNS = [c for c in messages.c if c.name not in ("payload", "ack")]

FILTERS: dict[str, ColumnElement[bool]] = {
    "status": messages.c.status == bindparam("status"),
    "since": messages.c.received_at >= bindparam("since"),
    "until": messages.c.received_at <= bindparam("until"),
    "listener": messages.c.listener == bindparam("listener"),
    "type_pattern": messages.c.message_type.like(bindparam("type_pattern")),
    "type": (messages.c.message_type == bindparam("message_type"))
    | messages.c.message_type.like(bindparam("type_prefix")),
    "patient": messages.c.id.in_(
        select(patient_ids.c.message_id).where(patient_ids.c.id_hash == bindparam("patient_hash"))
    ),
    "ids": messages.c.id.in_(bindparam("ids", expanding=True)),
}
"""The listing's filters (:func:`eai.store._listing_views.message_filters` gives their
names and the values of their parameters)."""


def messages_select(
    where: ColumnElement[bool] | TextClause | None, oldest_first: bool | None, limit: bool
) -> Select[Any]:
    """The listing's rows (``oldest_first`` None: unordered; ``limit``: ``LIMIT :limit``;
    ``where`` a placeholder ``TextClause`` when compiled ahead of time)."""
    q = select(*_COLUMNS)
    if where is not None:
        q = q.where(where)
    if oldest_first is not None:
        q = q.order_by(messages.c.id if oldest_first else messages.c.id.desc())
    if limit:
        q = q.limit(bindparam("limit", type_=Integer))
    return q


PAYLOADS = select(messages.c.id, MESSAGE_PAYLOAD.label("payload")).where(
    messages.c.id.in_(bindparam("ids", expanding=True))
)
DELIVERIES = (
    select(deliveries)
    .where(deliveries.c.message_id.in_(bindparam("ids", expanding=True)))
    .order_by(deliveries.c.id)
)


def _where(filters: Filters) -> tuple[ColumnElement[bool] | None, dict[str, Any]]:
    params: dict[str, Any] = {}
    for _, values in filters:
        params.update(values)
    if not filters:
        return None, params
    return and_(*(FILTERS[name] for name, _ in filters)), params


class _EngineQueries:
    """The listing's reads through SQLAlchemy (:class:`eai.store._listing_views.Queries`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def messages(self, filters: Filters, oldest_first: bool, limit: int | None) -> list[Row[Any]]:
        where, params = _where(filters)
        if limit:
            params["limit"] = limit
        with self.engine.connect() as conn:
            return list(conn.execute(messages_select(where, oldest_first, bool(limit)), params))

    def payloads(self, ids: Sequence[int]) -> Iterable[tuple[int, bytes]]:
        with self.engine.connect() as conn:
            return [(r.id, r.payload) for r in conn.execute(PAYLOADS, {"ids": list(ids)})]

    def deliveries(self, ids: Sequence[int]) -> Iterable[Row[Any]]:
        with self.engine.connect() as conn:
            return conn.execute(DELIVERIES, {"ids": list(ids)}).all()


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
    filters = message_filters(
        cipher,
        status=status,
        since=since,
        until=until,
        listener=listener,
        message_type=message_type,
        patient=patient,
        ids=ids,
    )
    reader = FieldReader(cipher if with_fields or where_field is not None else None)
    queries = _EngineQueries(engine)
    if where_field is None:
        return collect(
            queries, reader, filters, limit=limit, oldest_first=oldest_first, page=scan_page
        )
    name, value = where_field
    found = list(
        _scan(engine, reader, filters, (name, value.strip()), limit, oldest_first, scan_page)
    )
    dl = deliveries_of(queries, [r.id for r, _ in found])
    return [message_view(r, dl[r.id], f) for r, f in found]


def _scan(
    engine: Engine,
    reader: FieldReader,
    filters: Filters,
    where: tuple[str, str],
    limit: int | None,
    oldest_first: bool,
    page_size: int,
) -> Iterator[tuple[Row[Any], dict[str, str | None]]]:
    """The rows matching ``filters`` whose listing field ``where[0]`` is ``where[1]``, in
    order, at most ``limit``.

    Keyset pages of ``page_size`` rows (one short read each, no transaction held across
    the decryption)."""
    name, value = where
    types = [t for t, s in reader.specs.items() if name in s.fields]
    if not types:
        return
    condition, params = _where(filters)
    q = messages_select(condition, None, False)
    q = q.add_columns(MESSAGE_PAYLOAD.label("payload")).where(messages.c.content_type.in_(types))
    q = q.order_by(messages.c.id if oldest_first else messages.c.id.desc()).limit(page_size)
    last: int | None = None
    found = 0
    while True:
        page = q
        if last is not None:
            page = q.where(messages.c.id > last if oldest_first else messages.c.id < last)
        with engine.connect() as conn:
            rows = conn.execute(page, params).all()
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
    reader = FieldReader(cipher)
    queries = _EngineQueries(engine)
    fields = dict(reader.none)
    if reader.readable(r.content_type):
        fields = fields_of(queries, reader, [r]).get(message_id, fields)
    view = message_view(r, deliveries_of(queries, [message_id])[message_id], fields)
    view.events.extend(EventView(iso(e.at) or "", e.kind, e.detail, e.delivery_id) for e in evs)
    return view
