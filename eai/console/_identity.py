"""The console's identity page: anomalies per establishment and rule with the charter's
French text, and the held deliveries with their release action.

Touches: DB (reads anomalies and held deliveries through :mod:`eai.store`), files (the
charter: the bundled one and ``identity.charter``). The release itself is the message
page's action (``/deliveries/ID/release``: :func:`eai.store.release`, audited).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from eai.config import Config
from eai.console._auth import Session
from eai.console._web import Ctx, page, render
from eai.errors import EaiError
from eai.store import (
    AnomalyRow,
    MessageQuery,
    list_anomalies,
    list_messages,
    search_message_ids,
    utcnow,
)
from identity.charter import load_charter

__all__: list[str] = []

WINDOW = timedelta(days=7)
ANOMALY_LIMIT = 5000
HELD_LIMIT = 100


def charter_texts(config: Config) -> dict[str, str]:
    """Rule id -> the charter's message (French) for the rules in use."""
    try:
        return {r.id: r.message for r in load_charter(tuple(config.identity.charter))}
    except EaiError:  # an invalid regional file: the anomalies' own texts still say it
        return {}


def by_facility_and_rule(rows: list[AnomalyRow], texts: dict[str, str]) -> list[dict[str, Any]]:
    """One line per (establishment, rule), newest first: how many, the last one, the text."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:  # newest first
        g = groups.get((r.facility, r.rule))
        if g is None:
            groups[(r.facility, r.rule)] = {
                "facility": r.facility,
                "rule": r.rule,
                "severity": r.severity,
                "count": 1,
                "last_at": r.at,
                "last_message": r.message_id,
                "text": texts.get(r.rule) or r.explanation,
                "found": r.explanation,
            }
        else:
            g["count"] += 1
    return sorted(groups.values(), key=lambda g: (g["facility"], g["rule"]))


@page("/identity", "viewer")
async def identity_page(request: Request, ctx: Ctx, session: Session) -> Response:
    facility = request.query_params.get("facility", "").strip()
    since = utcnow() - WINDOW
    rows = list_anomalies(
        ctx.store.engine, facility=facility or None, since=since, limit=ANOMALY_LIMIT
    )
    ids = search_message_ids(
        ctx.store.engine, ctx.store.cipher, MessageQuery(delivery_status="held"), limit=HELD_LIMIT
    )
    held: list[dict[str, Any]] = []
    if ids:
        for m in list_messages(
            ctx.store.engine, ctx.store.cipher, ids=ids, limit=None, with_fields=False
        ):
            held += [{"m": m, "d": d} for d in m.deliveries if d.status == "held"]
    return render(
        request,
        "identity.html",
        session,
        groups=by_facility_and_rule(rows, charter_texts(ctx.config())),
        total=len(rows),
        capped=len(rows) == ANOMALY_LIMIT,
        days=WINDOW.days,
        facility=facility,
        held=held,
        more_held=len(ids) == HELD_LIMIT,
    )
