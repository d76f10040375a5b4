"""The console's alerts page: each firing or resolved alert with its silences, and the
"silence" action for operators, and the end of a silence before its time.

Touches: DB (reads the alerts and silences; a silence writes its row and its audit
record, naming the console account, in one transaction, as ``eai alerts silence``).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import Response

from eai import audit
from eai.alerts import RULES
from eai.config import parse_duration
from eai.console._actions import two_step
from eai.console._auth import Session
from eai.console._web import Ctx, page, peer_of, render
from eai.errors import EaiError
from eai.store import (
    Silence,
    add_silence,
    end_silence,
    list_alerts,
    list_silences,
    utcnow,
)

__all__: list[str] = []

SHOWN = ("firing", "pending", "resolved")
"""The states listed (``ok`` rows are every rule and scope measured: not news)."""


def _title(rule: str, scope: str) -> str:
    text = RULES.get(rule)
    return text.title(scope) if text is not None else rule


@page("/alerts", "viewer")
async def alerts_page(request: Request, ctx: Ctx, session: Session) -> Response:
    silences = list_silences(ctx.store.engine)
    shown = sorted(
        (a for a in list_alerts(ctx.store.engine) if a.state in SHOWN),
        key=lambda a: (SHOWN.index(a.state), a.rule, a.scope),
    )
    rows = [
        {
            "a": a,
            "title": _title(a.rule, a.scope),
            "silenced": [s.id for s in silences if s.matches(a.rule, a.scope)],
        }
        for a in shown
    ]
    return render(
        request,
        "alerts.html",
        session,
        rows=rows,
        silences=silences,
        rules=sorted(RULES),
    )


def _silence_form(values: dict[str, str]) -> tuple[str, str, int, str]:
    """The checks of ``eai alerts silence``: a known rule or ``*``, a positive duration,
    a reason."""
    rule, scope = values["rule"].strip(), values["scope"].strip()
    if rule != "*" and rule not in RULES:
        raise EaiError(f"rule {rule!r}: one of {', '.join(sorted(RULES))} or *")
    try:
        seconds = parse_duration(values["for"].strip())
    except ValueError as exc:
        raise EaiError(f"for: {exc}") from exc
    if seconds <= 0:
        raise EaiError("for: must be longer than 0")
    reason = " ".join(values["reason"].split())
    if not reason:
        raise EaiError("say why (reason)")
    return rule, scope, int(seconds), reason


@page("/alerts/silence", "operator", ("POST",))
async def silence_page(request: Request, ctx: Ctx, session: Session) -> Response:
    form = await request.form()
    values = {k: str(form.get(k, "")) for k in ("rule", "scope", "for", "reason")}
    try:
        rule, scope, seconds, reason = _silence_form(values)
    except EaiError as exc:
        return render(request, "error.html", session, 400, message=str(exc))
    actor = audit.account(session.name, peer_of(request))
    store = ctx.store

    def audited(conn: Connection, s: Silence) -> object:
        return audit.record(
            store,
            actor,
            "silence",
            target=f"{s.rule} {s.scope or '*'}",
            detail=f"silence {s.id} until {s.ends_at:%Y-%m-%dT%H:%M:%S}Z: {s.reason}",
            conn=conn,
        )

    def do() -> str:
        s = add_silence(
            store.engine,
            rule,
            scope,
            utcnow() + timedelta(seconds=seconds),
            session.name,
            reason,
            audited,
        )
        return (
            f"silence {s.id}: {rule} on {scope or 'every scope'} until "
            f"{s.ends_at:%Y-%m-%d %H:%M:%S} UTC"
        )

    title = f"silence {rule} on {scope or 'every scope'} for {values['for'].strip()}"
    return await two_step(
        request, session, title, "/alerts", do, [f"reason: {reason}"], fields=values
    )


@page("/alerts/silences/{silence_id:int}/end", "operator", ("POST",))
async def end_silence_page(request: Request, ctx: Ctx, session: Session) -> Response:
    silence_id = int(request.path_params["silence_id"])
    active = {s.id: s for s in list_silences(ctx.store.engine)}
    s = active.get(silence_id)
    if s is None:
        return render(
            request, "error.html", session, 404, message=f"no active silence {silence_id}"
        )
    actor = audit.account(session.name, peer_of(request))

    def do() -> str:
        ended = end_silence(ctx.store.engine, ctx.store.cipher, silence_id, actor)
        return (
            f"silence {ended.id} ended: {ended.rule} on {ended.scope or 'every scope'} mails again"
        )

    preview = [
        f"silence {s.id}: {s.rule} on {s.scope or 'every scope'} until "
        f"{s.ends_at:%Y-%m-%d %H:%M:%S} UTC, by {s.author}: {s.reason}"
    ]
    return await two_step(request, session, f"end silence {silence_id} now", "/alerts", do, preview)
