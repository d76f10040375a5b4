"""The web console: flows at a glance, the message browser, support actions, accounts.

Touches: network (its HTTP(S) server), DB (through :mod:`eai.store`).

Served by ``eai run`` on ``console.bind`` (:class:`ConsoleServer`, its own thread);
accounts are managed with ``eai users`` (:func:`hash_password`). See docs/console.md.
"""

from eai.console._app import build_app
from eai.console._auth import MIN_PASSWORD, LoginRefused, authenticate, hash_password, role_allows
from eai.console._server import ConsoleServer
from eai.console._web import PAGES, PageSpec

__all__ = [
    "MIN_PASSWORD",
    "PAGES",
    "ConsoleServer",
    "LoginRefused",
    "PageSpec",
    "authenticate",
    "build_app",
    "hash_password",
    "role_allows",
]
