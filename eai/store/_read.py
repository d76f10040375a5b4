"""What support engineers read and do from the CLI: listings, journeys, raw access, queues.

Touches: DB (short transactions of its own; safe while the engine runs).
"""

from __future__ import annotations

import json
import os
import pwd
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Row, Select, func, insert, select, update

from eai.errors import EaiError, NotFound, StoreError
from eai.store._crypto import Cipher
from eai.store._journal import utcnow
from eai.store._schema import (
    ACTIVE_DELIVERY,
    deliveries,
    destination_state,
    events,
    messages,
    patient_ids,
)
from eai.store._work import (
    CLAIMED_COLUMNS,
    ClaimedMessage,
    claimed_messages,
    release_deliveries,
)

__all__ = [
    "DICOM",
    "DeliveryView",
    "DicomUids",
    "EventView",
    "MessageView",
    "QueueView",
    "list_messages",
    "message_detail",
    "messages_for_replay",
    "queue_stats",
    "read_raw",
    "resend",
    "content_deliveries",
    "set_paused",
    "settlement",
]


def _real_user() -> str:
    """This process's user by its real uid (never ``$USER``, which anyone can set)."""
    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid-{uid}"


def _iso(dt: datetime | None) -> str | None:
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
class DicomUids:
    """The identifiers of a journaled DICOM instance (``None``: not known, e.g. refused early).

    Read from the instance reference (``dicom_router.reference``), whose other
    fields (``attrs`` holds PatientID) are never taken out of it here.
    """

    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    sop_instance_uid: str | None = None


_NO_UIDS = DicomUids()


def _dicom_uids(cipher: Cipher, sealed: bytes) -> DicomUids:
    """The three UIDs of a sealed DICOM reference; unknown ones (or all, when the
    payload is not a readable reference) are None: a listing never fails on one row."""
    try:
        data = json.loads(cipher.open(sealed))
    except (StoreError, ValueError):
        return _NO_UIDS
    if not isinstance(data, dict):
        return _NO_UIDS

    def uid(key: str) -> str | None:
        value = data.get(key)
        return value if isinstance(value, str) and value else None

    return DicomUids(uid("study_instance_uid"), uid("series_instance_uid"), uid("sop_instance_uid"))


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
    dicom: DicomUids = _NO_UIDS

    def to_json(self, with_events: bool = False) -> dict[str, object]:
        out: dict[str, object] = {
            "id": self.id,
            "received_at": self.received_at,
            "listener": self.listener,
            "content_type": self.content_type,
            "control_id": self.control_id,
            "message_type": self.message_type,
            "status": self.status,
            "study_instance_uid": self.dicom.study_instance_uid,
            "series_instance_uid": self.dicom.series_instance_uid,
            "sop_instance_uid": self.dicom.sop_instance_uid,
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
                _iso(r.next_attempt_at) if r.status in ACTIVE_DELIVERY else None,
                _iso(r.delivered_at),
                r.resend_of,
            )
        )
    return out


def _view(r: Row[Any], dl: list[DeliveryView], dicom: DicomUids = _NO_UIDS) -> MessageView:
    return MessageView(
        r.id,
        _iso(r.received_at) or "",
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
        dicom=dicom,
    )


_COLUMNS = [c for c in messages.c if c.name not in ("payload", "ack")]


DICOM = "dicom"
"""The content type of journaled DICOM instances (``dicom_router``)."""

_SCAN_BATCH = 500


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
    study: str | None = None,
    ids: Sequence[int] | None = None,
    limit: int | None = 100,
    oldest_first: bool = False,
    dicom_uids: bool = True,
) -> list[MessageView]:
    """Messages matching every filter given, newest first (``oldest_first``: by arrival).

    DICOM messages carry their Study, Series and SOP Instance UIDs (``dicom_uids``;
    replay, which needs only ids, turns it off). These live in the encrypted instance
    reference: each listed DICOM payload is opened and only the three UIDs are taken
    out, as ``eai dicom queue`` does for the study. UIDs are not patient data (the SOP
    Instance UID is already the clear ``control_id``), so no ``raw_viewed`` event is
    recorded; the payload itself is never returned.

    ``study``: only DICOM messages of that Study Instance UID. No clear column holds
    it, so the DICOM messages that pass the other filters are scanned, newest first, in
    batches, until ``limit`` match: narrow it with ``since`` on a large journal.
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
    if study is not None:
        found = list(_scan_study(engine, cipher, q, study.strip(), limit, oldest_first))
        rows = [r for r, _ in found]
        uids = {r.id: u for r, u in found}
    else:
        q = q.order_by(messages.c.id if oldest_first else messages.c.id.desc())
        if limit:
            q = q.limit(limit)
        with engine.connect() as conn:
            rows = list(conn.execute(q).all())
        dicom_ids = [r.id for r in rows if r.content_type == DICOM] if dicom_uids else []
        uids = _uids_of(engine, cipher, dicom_ids)
    dl = _deliveries_of(engine, [r.id for r in rows])
    return [_view(r, dl[r.id], uids.get(r.id, _NO_UIDS)) for r in rows]


def _uids_of(engine: Engine, cipher: Cipher, ids: Sequence[int]) -> dict[int, DicomUids]:
    out: dict[int, DicomUids] = {}
    with engine.connect() as conn:
        for start in range(0, len(ids), _SCAN_BATCH):
            part = list(ids[start : start + _SCAN_BATCH])
            for mid, sealed in conn.execute(
                select(messages.c.id, messages.c.payload).where(messages.c.id.in_(part))
            ).all():
                out[mid] = _dicom_uids(cipher, sealed)
    return out


def _scan_study(
    engine: Engine,
    cipher: Cipher,
    q: Select[Any],
    study: str,
    limit: int | None,
    oldest_first: bool,
) -> Iterator[tuple[Row[Any], DicomUids]]:
    """The rows of ``q`` that are DICOM instances of ``study``, in order, at most ``limit``.

    Keyset pages of :data:`_SCAN_BATCH` (one short read each, no transaction held
    across the decryption)."""
    q = q.add_columns(messages.c.payload).where(messages.c.content_type == DICOM)
    q = q.order_by(messages.c.id if oldest_first else messages.c.id.desc()).limit(_SCAN_BATCH)
    last: int | None = None
    found = 0
    while True:
        page = q
        if last is not None:
            page = q.where(messages.c.id > last if oldest_first else messages.c.id < last)
        with engine.connect() as conn:
            rows = conn.execute(page).all()
        for r in rows:
            uids = _dicom_uids(cipher, r.payload)
            if uids.study_instance_uid == study:
                yield r, uids
                found += 1
                if limit and found >= limit:
                    return
        if len(rows) < _SCAN_BATCH:
            return
        last = rows[-1].id


def message_detail(engine: Engine, message_id: int, cipher: Cipher | None = None) -> MessageView:
    """One message with its deliveries and events; with ``cipher``, a DICOM message's
    UIDs too (as :func:`list_messages` reads them)."""
    with engine.connect() as conn:
        r = conn.execute(select(*_COLUMNS).where(messages.c.id == message_id)).first()
        if r is None:
            raise NotFound(f"no message with id {message_id}")
        evs = conn.execute(
            select(events).where(events.c.message_id == message_id).order_by(events.c.id)
        ).all()
    uids = (
        _uids_of(engine, cipher, [message_id]).get(message_id, _NO_UIDS)
        if cipher is not None and r.content_type == DICOM
        else _NO_UIDS
    )
    view = _view(r, _deliveries_of(engine, [message_id])[message_id], uids)
    view.events.extend(EventView(_iso(e.at) or "", e.kind, e.detail, e.delivery_id) for e in evs)
    return view


def read_raw(engine: Engine, cipher: Cipher, message_id: int, *, reader: str, via: str) -> bytes:
    """The payload in clear, once its access is recorded: the ``raw_viewed`` event naming
    ``reader`` (as the kernel identified them) and ``via`` is committed before the payload
    is decrypted; if the record cannot be written, nothing is returned."""
    with engine.begin() as conn:
        sealed = conn.execute(
            select(messages.c.payload).where(messages.c.id == message_id)
        ).scalar()
        if sealed is None:
            raise NotFound(f"no message with id {message_id}")
        conn.execute(
            insert(events).values(
                at=utcnow(),
                message_id=message_id,
                kind="raw_viewed",
                detail=f"payload shown to {reader} {via}",
            )
        )
    return cipher.open(sealed)


def messages_for_replay(engine: Engine, ids: Sequence[int]) -> list[ClaimedMessage]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(*CLAIMED_COLUMNS).where(messages.c.id.in_(list(ids))).order_by(messages.c.id)
        ).all()
    found = {r.id for r in rows}
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(f"no message with id {missing[0]}")
    return claimed_messages(rows)


def resend(engine: Engine, delivery_ids: Sequence[int]) -> list[int]:
    """Queues each delivery again, as it was (same payload, same destination)."""
    created: list[int] = []
    now = utcnow()
    with engine.begin() as conn:
        for did in delivery_ids:
            r = conn.execute(select(deliveries).where(deliveries.c.id == did)).first()
            if r is None:
                raise NotFound(f"no delivery with id {did}")
            new_id = conn.execute(
                insert(deliveries)
                .values(
                    message_id=r.message_id,
                    destination=r.destination,
                    route=r.route,
                    patient_key=r.patient_key,
                    control_id=r.control_id,
                    status="pending",
                    attempts=0,
                    created_at=now,
                    next_attempt_at=now,
                    last_error="",
                    payload=r.payload,
                    resend_of=r.id,
                )
                .returning(deliveries.c.id)
            ).scalar_one()
            conn.execute(
                insert(events).values(
                    at=now,
                    message_id=r.message_id,
                    delivery_id=new_id,
                    kind="resent",
                    detail=f"delivery {did} to {r.destination} queued again as {new_id} "
                    f"by {_real_user()}",
                )
            )
            created.append(new_id)
    return created


@dataclass(frozen=True)
class QueueView:
    destination: str
    state: str
    depth: int
    retrying: int
    dead: int
    delivered: int
    oldest_pending_age_s: float | None
    held: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "destination": self.destination,
            "state": self.state,
            "depth": self.depth,
            "retrying": self.retrying,
            "dead": self.dead,
            "held": self.held,
            "delivered": self.delivered,
            "oldest_pending_age_s": self.oldest_pending_age_s,
        }


def queue_stats(engine: Engine, names: Sequence[str]) -> list[QueueView]:
    now = utcnow()
    with engine.connect() as conn:
        counts = conn.execute(
            select(deliveries.c.destination, deliveries.c.status, func.count()).group_by(
                deliveries.c.destination, deliveries.c.status
            )
        ).all()
        oldest = dict(
            conn.execute(
                select(deliveries.c.destination, func.min(deliveries.c.created_at))
                .where(deliveries.c.status.in_(ACTIVE_DELIVERY))
                .group_by(deliveries.c.destination)
            ).all()
        )
        paused = dict(
            conn.execute(select(destination_state.c.name, destination_state.c.paused)).all()
        )
    per: dict[str, dict[str, int]] = {}
    for dest, st, n in counts:
        per.setdefault(dest, {})[st] = n
    out = []
    for name in list(names) + sorted(set(per) - set(names)):
        c = per.get(name, {})
        o = oldest.get(name)
        out.append(
            QueueView(
                name,
                "paused" if paused.get(name) else ("active" if name in names else "unconfigured"),
                c.get("pending", 0) + c.get("retrying", 0),
                c.get("retrying", 0),
                c.get("dead", 0),
                c.get("delivered", 0),
                None if o is None else round((now - o).total_seconds(), 1),
                c.get("held", 0),
            )
        )
    return out


def set_paused(engine: Engine, name: str, paused: bool) -> None:
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
                detail=f"destination {name} by {_real_user()}",
            )
        )


def release(engine: Engine, delivery_ids: Sequence[int]) -> int:
    """An operator releases held deliveries (the identity was checked by hand)."""
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
        who = f"released by {_real_user()}"
        release_deliveries(conn, [(d, found[d].message_id, who) for d in delivery_ids], now)
    return len(delivery_ids)


def settlement(engine: Engine, dedup_keys: Sequence[str], before: datetime) -> dict[str, bool]:
    """For each journaled ``dedup_key``: True when its message was settled before ``before``.

    Settled: ``filtered`` (at ``processed_at``), or ``processed`` with every
    delivery ``delivered`` (at the last ``delivered_at``). Keys of no message are
    absent from the result. Used by the DICOM spool retention.
    """
    out: dict[str, bool] = {}
    keys = list(dict.fromkeys(dedup_keys))
    with engine.connect() as conn:
        for start in range(0, len(keys), 500):
            rows = conn.execute(
                select(
                    messages.c.id, messages.c.dedup_key, messages.c.status, messages.c.processed_at
                ).where(messages.c.dedup_key.in_(keys[start : start + 500]))
            ).all()
            processed = [r.id for r in rows if r.status == "processed"]
            done: dict[int, list[tuple[str, datetime | None]]] = {i: [] for i in processed}
            if processed:
                for d in conn.execute(
                    select(
                        deliveries.c.message_id, deliveries.c.status, deliveries.c.delivered_at
                    ).where(deliveries.c.message_id.in_(processed))
                ).all():
                    done[d.message_id].append((d.status, d.delivered_at))
            for r in rows:
                if r.status == "filtered":
                    out[r.dedup_key] = r.processed_at is not None and r.processed_at < before
                elif r.status == "processed":
                    dl = done[r.id]
                    out[r.dedup_key] = bool(dl) and all(
                        st == "delivered" and at is not None and at < before for st, at in dl
                    )
                else:
                    out[r.dedup_key] = False
    return out


def content_deliveries(
    engine: Engine, content_type: str, since: datetime | None = None
) -> list[tuple[str, str, int, bytes]]:
    """(destination, status, message id, sealed message payload) of the latest delivery
    per message and destination, for the messages of ``content_type`` (``eai dicom queue``)."""
    latest = (
        select(func.max(deliveries.c.id))
        .join(messages, messages.c.id == deliveries.c.message_id)
        .where(messages.c.content_type == content_type)
        .group_by(deliveries.c.message_id, deliveries.c.destination)
    )
    if since is not None:
        latest = latest.where(messages.c.received_at >= since)
    q = (
        select(
            deliveries.c.destination,
            deliveries.c.status,
            deliveries.c.message_id,
            messages.c.payload,
        )
        .join(messages, messages.c.id == deliveries.c.message_id)
        .where(deliveries.c.id.in_(latest))
        .order_by(deliveries.c.message_id)
    )
    with engine.connect() as conn:
        return [(r[0], r[1], r[2], r[3]) for r in conn.execute(q).all()]
