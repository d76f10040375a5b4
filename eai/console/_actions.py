"""The console's support actions: pause/resume, resend, release, replay.

Touches: DB (through the same :mod:`eai.store` functions as the CLI, each writing its
event and its audit record, naming the console account, in its own transaction).

Each action is two POSTs: the first shows what will happen (for a replay, the
dry-run plan) and a confirmation form; the second, with ``confirm=yes``, does it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response

from eai import audit
from eai.console._auth import Session
from eai.console._web import Ctx, page, peer_of, render
from eai.errors import EaiError
from eai.store import (
    AuditActor,
    messages_for_replay,
    release,
    replay_plans,
    resend,
    set_paused,
)

__all__ = ["two_step"]


def _actor(request: Request, session: Session) -> AuditActor:
    return audit.account(session.name, peer_of(request))


async def two_step(
    request: Request,
    session: Session,
    title: str,
    back: str,
    do: Callable[[], str],
    preview: list[str] | None = None,
    fields: dict[str, str] | None = None,
) -> Response:
    """The confirmation page (``fields`` carried to it as hidden inputs), then ``do``."""
    form = await request.form()
    if form.get("confirm") != "yes":
        return render(
            request,
            "confirm.html",
            session,
            title=title,
            action=request.url.path,
            preview=preview or [],
            fields=fields or {},
            back=back,
        )
    try:
        done = do()
    except EaiError as exc:
        return render(request, "error.html", session, 409, message=str(exc))
    return render(request, "done.html", session, title=title, done=done, back=back)


def _destination(ctx: Ctx, request: Request) -> str:
    name = str(request.path_params["name"])
    if name not in {d.name for d in ctx.config().destinations}:
        raise EaiError(f"unknown destination {name!r}")
    return name


@page("/destinations/{name}/pause", "operator", ("POST",))
async def pause(request: Request, ctx: Ctx, session: Session) -> Response:
    return await _paused(request, ctx, session, True)


@page("/destinations/{name}/resume", "operator", ("POST",))
async def resume(request: Request, ctx: Ctx, session: Session) -> Response:
    return await _paused(request, ctx, session, False)


async def _paused(request: Request, ctx: Ctx, session: Session, paused: bool) -> Response:
    try:
        name = _destination(ctx, request)
    except EaiError as exc:
        return render(request, "error.html", session, 404, message=str(exc))
    verb = "pause" if paused else "resume"

    def do() -> str:
        set_paused(
            ctx.store.engine, name, paused, cipher=ctx.store.cipher, actor=_actor(request, session)
        )
        return f"{name} {verb}d"

    return await two_step(request, session, f"{verb} destination {name}", "/", do)


@page("/deliveries/{delivery_id:int}/resend", "operator", ("POST",))
async def resend_page(request: Request, ctx: Ctx, session: Session) -> Response:
    did = int(request.path_params["delivery_id"])
    back = f"/messages/{request.query_params.get('m', '')}" if "m" in request.query_params else "/"

    def do() -> str:
        (new,) = resend(
            ctx.store.engine, [did], cipher=ctx.store.cipher, actor=_actor(request, session)
        )
        return f"delivery {did} queued again as delivery {new}"

    return await two_step(request, session, f"resend delivery {did}", back, do)


@page("/deliveries/{delivery_id:int}/release", "operator", ("POST",))
async def release_page(request: Request, ctx: Ctx, session: Session) -> Response:
    did = int(request.path_params["delivery_id"])
    back = f"/messages/{request.query_params.get('m', '')}" if "m" in request.query_params else "/"

    def do() -> str:
        release(ctx.store.engine, [did], cipher=ctx.store.cipher, actor=_actor(request, session))
        return f"delivery {did} released"

    return await two_step(request, session, f"release held delivery {did}", back, do)


@page("/messages/{message_id:int}/replay", "operator", ("POST",))
async def replay_page(request: Request, ctx: Ctx, session: Session) -> Response:
    """Shows the dry-run plan through today's routes.yaml, then replays on confirmation."""
    from eai.pipeline import plan_all  # as the CLI: only the replay loads the pipeline

    message_id = int(request.path_params["message_id"])
    config = ctx.config()
    try:
        plans = plan_all(
            config, ctx.store.cipher, messages_for_replay(ctx.store.engine, [message_id])
        )
    except EaiError as exc:
        return render(request, "error.html", session, 404, message=str(exc))
    preview = [
        f"message {p.message_id}: {p.status}, would go to "
        f"{', '.join(d.destination for d in p.deliveries) or 'nowhere'}"
        + (f" ({p.reason})" if p.reason else "")
        for p in plans
    ]
    path = ctx.config_path

    def do() -> str:
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path else ""
        created = replay_plans(
            ctx.store.engine,
            plans,
            config_path=str(path.resolve()) if path else "(no file)",
            config_sha256=digest,
            cipher=ctx.store.cipher,
            actor=_actor(request, session),
        )
        return f"message {message_id} replayed: {len(created)} delivery(ies) queued"

    return await two_step(
        request, session, f"replay message {message_id}", f"/messages/{message_id}", do, preview
    )
