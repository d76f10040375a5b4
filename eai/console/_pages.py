"""The console's read pages: overview, message search, a message's journey, the audit trail.

Touches: DB (reads through :mod:`eai.store`; the payload only through
:func:`eai.store.read_raw`, which records the access first).

Handlers run on the console's own event loop (its own thread): a slow query slows
the console, never the listeners.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from eai.console._auth import Session
from eai.console._spark import sparkline
from eai.console._web import Ctx, page, read_recorded, render
from eai.errors import NotFound
from eai.store import (
    MessageQuery,
    destination_rows,
    flow_rates,
    flow_series,
    list_alerts,
    list_audit,
    list_messages,
    message_detail,
    read_raw,
    search_message_ids,
    utcnow,
    verify_chain,
)

__all__ = ["overview_rows"]

RATE_WINDOW = timedelta(minutes=5)
PAGE_SIZE = 50
STATUSES = ("received", "processed", "filtered", "rejected")
DELIVERY_STATUSES = ("pending", "retrying", "held", "delivered", "dead")


DOWN_RULES = {"listener_down": "listener", "destination_failing": "destination"}
"""The alert rules whose pending or firing state says a listener or destination is down."""


def down_since(ctx: Ctx) -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> since when the alerts see it down (the earliest node's alert), from
    the alerts' state: ``pending`` since the condition was seen, ``firing`` since it fired."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for a in list_alerts(ctx.store.engine):
        kind = DOWN_RULES.get(a.rule)
        if kind is None or a.state not in ("pending", "firing"):
            continue
        name = a.scope.partition(":")[2].partition("@")[0]
        at = a.fired_at if a.state == "firing" and a.fired_at else a.since
        key = (kind, name)
        if key not in out or at < out[key]["at"]:
            out[key] = {"at": at, "rule": a.rule, "state": a.state, "value": a.value}
    return out


def overview_rows(ctx: Ctx) -> dict[str, Any]:
    """One row per listener and destination, from indexed counts (no payload read)."""
    config = ctx.config()
    now = utcnow()
    down = down_since(ctx)
    rates = flow_rates(ctx.store.engine, now - RATE_WINDOW)
    states = ctx.listener_states()
    spark = flow_series(ctx.store.engine, now)
    minutes = RATE_WINDOW.total_seconds() / 60
    listeners = []
    for lst in config.listeners:
        counts = rates.get(lst.name, {})
        listeners.append(
            {
                "name": lst.name,
                "type": lst.type,
                "state": states.get(lst.name, "down"),
                "per_min": round(sum(counts.values()) / minutes, 1),
                "rejected": counts.get("rejected", 0),
                "received": sum(counts.values()),
                "down": down.get(("listener", lst.name)),
                "spark": sparkline(spark.get(("listener", lst.name))),
            }
        )
    queues = destination_rows(
        ctx.store.engine, [d.name for d in config.destinations], now - RATE_WINDOW
    )
    return {
        "listeners": listeners,
        "queues": queues,
        "dest_spark": {
            q.destination: sparkline(spark.get(("destination", q.destination))) for q in queues
        },
        "down": {name: d for (kind, name), d in down.items() if kind == "destination"},
        "routes": [
            {
                "name": r.name,
                "from": ", ".join(r.from_),
                "to": ", ".join(r.to),
                "spark": sparkline(spark.get(("route", r.name))),
            }
            for r in config.routes
        ],
        "at": now.replace(microsecond=0).isoformat() + "Z",
    }


@page("/", "viewer")
async def overview(request: Request, ctx: Ctx, session: Session) -> Response:
    return render(request, "overview.html", session, refresh=ctx.cfg.refresh, **overview_rows(ctx))


@page("/overview/rows", "viewer")
async def overview_partial(request: Request, ctx: Ctx, session: Session) -> Response:
    return render(request, "overview_rows.html", session, **overview_rows(ctx))


def _when(value: str) -> datetime | None:
    if not value.strip():
        return None
    try:
        dt = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return dt.astimezone(UTC).replace(tzinfo=None) if dt.tzinfo else dt


@page("/messages", "viewer")
async def messages_page(request: Request, ctx: Ctx, session: Session) -> Response:
    p = request.query_params
    form = {k: p.get(k, "") for k in _FILTERS}
    query = MessageQuery(
        since=_when(form["since"]),
        until=_when(form["until"]),
        listener=form["listener"],
        facility=form["facility"],
        message_type=form["type"],
        status=form["status"],
        control_id=form["control_id"],
        patient=form["patient"],
        patient_hash=p.get("patient_hash", "") if not form["patient"] else "",
        destination=form["destination"],
        delivery_status=form["delivery_status"],
    )
    before = p.get("before", "")
    searched = any(form.values()) or bool(query.patient_hash)
    rows = []
    if searched or before or p.get("all"):
        ids = search_message_ids(
            ctx.store.engine,
            ctx.store.cipher,
            query,
            before=int(before) if before.isdigit() else None,
            limit=PAGE_SIZE,
        )
        if ids:
            rows = list_messages(
                ctx.store.engine, ctx.store.cipher, ids=ids, limit=None, with_fields=False
            )
    params = {k: v for k, v in form.items() if v and k != "patient"}
    if query.patient or query.patient_hash:  # the next page by the keyed hash, never the id
        params["patient_hash"] = query.patient_hash or ctx.store.cipher.hash_id(query.patient)
    config = ctx.config()
    return render(
        request,
        "messages.html",
        session,
        form=form,
        rows=rows,
        more=len(rows) == PAGE_SIZE,
        next_params=params,
        listeners=[lst.name for lst in config.listeners],
        destinations=[d.name for d in config.destinations],
        statuses=STATUSES,
        delivery_statuses=DELIVERY_STATUSES,
    )


_FILTERS = (
    "since",
    "until",
    "listener",
    "facility",
    "type",
    "status",
    "control_id",
    "patient",
    "destination",
    "delivery_status",
)


@page("/messages/{message_id:int}", "viewer")
async def message_page(request: Request, ctx: Ctx, session: Session) -> Response:
    message_id = int(request.path_params["message_id"])
    try:
        view = message_detail(ctx.store.engine, message_id)
    except NotFound:
        return render(request, "error.html", session, 404, message=f"no message {message_id}")
    return render(request, "message.html", session, m=view)


@page("/messages/{message_id:int}/raw", "operator", ("POST",))
async def raw_page(request: Request, ctx: Ctx, session: Session) -> Response:
    """The payload, once the read is recorded (read_raw writes the audit record first)."""
    message_id = int(request.path_params["message_id"])
    got = await read_recorded(request, ctx, session, read_raw, message_id, "message")
    if isinstance(got, Response):
        return got
    payload, reason = got
    text = payload.decode("utf-8", "replace").replace("\r", "\n")
    return render(request, "raw.html", session, message_id=message_id, text=text, reason=reason)


@page("/audit", "admin")
async def audit_page(request: Request, ctx: Ctx, session: Session) -> Response:
    actor = request.query_params.get("actor") or None
    rows = list_audit(ctx.store.engine, actor=actor, limit=200)
    check = None
    if request.query_params.get("verify"):
        check = verify_chain(ctx.store.engine, ctx.store.cipher)
    return render(request, "audit.html", session, rows=rows, check=check, actor=actor or "")
