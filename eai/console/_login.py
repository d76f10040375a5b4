"""The login page (a plain HTML form with a CSRF token) and logout.

Touches: DB (accounts, audit records).

Before the login there is no session: the form's CSRF token is double-submitted (a
cookie of its own and a hidden field that must match).
"""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from eai import audit
from eai.console._auth import LoginRefused, authenticate
from eai.console._web import (
    COOKIE,
    LOGIN_COOKIE,
    SECURITY_HEADERS,
    Ctx,
    csrf_ok,
    peer_of,
    render,
)

__all__ = ["login_get", "login_post", "logout"]


def _safe_next(value: str) -> str:
    return value if value.startswith("/") and not value.startswith("//") else "/"


def _form(request: Request, ctx: Ctx, error: str = "", status: int = 200) -> Response:
    token = secrets.token_urlsafe(32)
    nxt = _safe_next(request.query_params.get("next", "/"))
    response = render(request, "login.html", None, status, csrf=token, next=nxt, error=error)
    response.set_cookie(
        LOGIN_COOKIE, token, max_age=900, httponly=True, samesite="strict", secure=ctx.https
    )
    return response


async def login_get(request: Request, ctx: Ctx) -> Response:
    return _form(request, ctx)


async def login_post(request: Request, ctx: Ctx) -> Response:
    form = await request.form()
    if not csrf_ok(
        request.cookies.get(LOGIN_COOKIE, ""), form.get("csrf")
    ) or not request.cookies.get(LOGIN_COOKIE):
        return _form(request, ctx, "the form expired: try again", 403)
    name = str(form.get("user", "")).strip()
    password = str(form.get("password", ""))
    peer = peer_of(request)
    try:
        role = authenticate(ctx.store, ctx.cfg, name, password, peer)
    except LoginRefused as exc:
        return _form(request, ctx, str(exc), 401)
    token, _ = ctx.sessions.open(name, role, peer)
    response = RedirectResponse(_safe_next(str(form.get("next", "/"))), 303, SECURITY_HEADERS)
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(ctx.cfg.session_ttl),
        httponly=True,
        samesite="strict",
        secure=ctx.https,
    )
    response.delete_cookie(LOGIN_COOKIE)
    return response


async def logout(request: Request, ctx: Ctx) -> Response:
    token = request.cookies.get(COOKIE, "")
    session = ctx.sessions.get(token) if token else None
    form = await request.form()
    if session is not None and csrf_ok(session.csrf, form.get("csrf")):
        ctx.sessions.close(token)
        audit.record(ctx.store, audit.account(session.name, peer_of(request)), "logout")
    response = RedirectResponse("/login", 303, SECURITY_HEADERS)
    response.delete_cookie(COOKIE)
    return response
