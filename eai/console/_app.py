"""The console's Starlette application: the login, the registered pages, the assets.

Touches: nothing by itself (see the pages).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from eai.config import Config, ConsoleConfig
from eai.console import _actions, _alerts, _identity, _output, _pages  # noqa: F401 - they register pages
from eai.console._auth import Sessions
from eai.console._login import login_get, login_post, logout
from eai.console._web import PAGES, Ctx, wrapped
from eai.store import Store

__all__ = ["build_app"]


def _bound(
    fn: Callable[[Request, Ctx], Awaitable[Response]], ctx: Ctx
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await fn(request, ctx)

    return endpoint


def build_app(
    store: Store,
    config: Callable[[], Config],
    cfg: ConsoleConfig,
    *,
    config_path: Path | None = None,
    listener_states: Callable[[], dict[str, str]] = dict,
) -> Starlette:
    """The console over ``store``; ``config`` returns the running routes.yaml (it changes
    on reload), ``listener_states`` each listener's state (running, down...)."""
    ctx = Ctx(
        store,
        config,
        config_path,
        listener_states,
        cfg,
        Sessions(cfg.session_ttl, cfg.idle_timeout),
    )
    routes: list[Route | Mount] = [
        Route("/login", _bound(login_get, ctx), methods=["GET"]),
        Route("/login", _bound(login_post, ctx), methods=["POST"]),
        Route("/logout", _bound(logout, ctx), methods=["POST"]),
        Mount("/static", StaticFiles(packages=[("eai.console", "static")]), name="static"),
    ]
    routes += [Route(p.path, wrapped(p, ctx), methods=list(p.methods)) for p in PAGES]
    return Starlette(routes=routes)
