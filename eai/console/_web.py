"""The console's web plumbing: the page registry with roles, sessions, CSRF, templates.

Touches: nothing by itself (the pages do; see ``_pages``; :func:`read_recorded` runs the
store read a page hands it).

A page is registered with :func:`page` and the least role that may open it; the
wrapper answers an anonymous request with a redirect to the login page, a lower role
with 403, a state change (POST) without the session's CSRF token with 403, and
re-reads the account each time (a disabled account's session ends at once).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from eai import audit
from eai.config import Config, ConsoleConfig
from eai.console._auth import Session, Sessions, role_allows
from eai.errors import NotFound
from eai.store import Store, get_account

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from eai.store import AuditActor, Cipher

__all__ = [
    "COOKIE",
    "PAGES",
    "Ctx",
    "PageSpec",
    "csrf_ok",
    "page",
    "peer_of",
    "read_recorded",
    "reason_of",
    "render",
    "wrapped",
]

COOKIE = "eai_session"
LOGIN_COOKIE = "eai_login_csrf"

TEMPLATES = Environment(
    loader=PackageLoader("eai.console", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass
class Ctx:
    """What the pages need of the running engine."""

    store: Store
    config: Callable[[], Config]
    config_path: Path | None
    listener_states: Callable[[], dict[str, str]]
    cfg: ConsoleConfig
    sessions: Sessions

    @property
    def https(self) -> bool:
        return self.cfg.tls is not None


Handler = Callable[[Request, Ctx, Session], Awaitable[Response]]


@dataclass(frozen=True)
class PageSpec:
    path: str
    methods: tuple[str, ...]
    role: str
    handler: Handler


PAGES: list[PageSpec] = []
"""Every page behind the login, with its least role (the tests walk it)."""


def page(path: str, role: str, methods: tuple[str, ...] = ("GET",)) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        PAGES.append(PageSpec(path, methods, role, handler))
        return handler

    return register


def peer_of(request: Request) -> str:
    return request.client.host if request.client else ""


async def reason_of(request: Request) -> str:
    """The form's ``reason`` for reading patient data, on one line ("" = none given)."""
    form = await request.form()
    return " ".join(str(form.get("reason", "")).split())


T_co = TypeVar("T_co", covariant=True)


class RecordedRead(Protocol[T_co]):
    """A store read of patient data that records it first (``read_raw``, ``read_delivery``):
    :class:`NotFound` when there is no such row."""

    def __call__(
        self,
        engine: Engine,
        cipher: Cipher,
        key: int,
        /,
        *,
        reader: str,
        via: str,
        actor: AuditActor,
    ) -> T_co: ...


async def read_recorded(
    request: Request, ctx: Ctx, session: Session, read: RecordedRead[T_co], key: int, what: str
) -> tuple[T_co, str] | Response:
    """``read`` of row ``key`` for ``session``'s person, who must give a reason (recorded
    with their address in the read's audit record), and that reason; or the page to answer
    instead: 400 without a reason, 404 when there is no ``what`` ``key``."""
    reason = await reason_of(request)
    if not reason:
        return render(request, "error.html", session, 400, message="say why you read it (reason)")
    peer = peer_of(request)
    try:
        got = read(
            ctx.store.engine,
            ctx.store.cipher,
            key,
            reader=session.name,
            via=f"console from {peer}: {reason}",
            actor=audit.account(session.name, peer),
        )
    except NotFound:
        return render(request, "error.html", session, 404, message=f"no {what} {key}")
    return got, reason


def render(
    request: Request,
    template: str,
    session: Session | None = None,
    status: int = 200,
    **values: Any,
) -> HTMLResponse:
    html = TEMPLATES.get_template(template).render(session=session, path=request.url.path, **values)
    return HTMLResponse(html, status, headers=SECURITY_HEADERS)


SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
}


def csrf_ok(expected: str, given: object) -> bool:
    return isinstance(given, str) and hmac.compare_digest(expected.encode(), given.encode())


def _to_login(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", 303, headers=SECURITY_HEADERS)


def wrapped(spec: PageSpec, ctx: Ctx) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        token = request.cookies.get(COOKIE, "")
        session = ctx.sessions.get(token) if token else None
        if session is not None:
            account = get_account(ctx.store.engine, session.name)
            if account is None or account.disabled or account.locked():
                ctx.sessions.close(token)
                session = None
            else:
                session.role = account.role
        if session is None:
            if request.method == "GET":
                return _to_login(request)
            return render(request, "error.html", None, 401, message="please log in again")
        if not role_allows(session.role, spec.role):
            return render(
                request, "error.html", session, 403, message=f"this page needs the {spec.role} role"
            )
        if request.method == "POST":
            form = await request.form()
            if not csrf_ok(session.csrf, form.get("csrf")):
                return render(request, "error.html", session, 403, message="CSRF token missing")
        return await spec.handler(request, ctx, session)

    return endpoint
