"""The console of an engine running in a thread, for the tests that use it over real HTTP:
a viewer and an operator account, a logged-in client per account, the form's CSRF token.

Touches: DB (adds the accounts to the engine's journal), network (HTTP to 127.0.0.1).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from eai.console import hash_password
from eai.store import Store, add_account
from tests.engine_harness import EngineThread

__all__ = ["PASSWORDS", "ROLES", "ConsoleSite", "csrf_of"]

PASSWORDS = {"vera": "viewer-pass-123", "otto": "operator-pass-123"}
ROLES = {"vera": "viewer", "otto": "operator"}


def csrf_of(html: str) -> str:
    """The CSRF token of the form in ``html``."""
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html
    return m.group(1)


class ConsoleSite:
    """``eng``'s console: its address and the engine's own store (one SQLite opener)."""

    timeout = 20.0
    """Of each request of :meth:`client`."""

    def __init__(self, eng: EngineThread) -> None:
        assert eng.engine.console is not None and eng.engine.store is not None
        self.base = f"http://127.0.0.1:{eng.engine.console.port}"
        self.store: Store = eng.engine.store

    def add_accounts(self) -> None:
        """The accounts of :data:`ROLES`, with their :data:`PASSWORDS`."""
        for name, role in ROLES.items():
            add_account(self.store.engine, name, role, hash_password(PASSWORDS[name]))

    @contextmanager
    def client(self, name: str) -> Iterator[httpx.Client]:
        """A client logged in as ``name`` (its session cookie kept; no redirect followed)."""
        with httpx.Client(base_url=self.base, follow_redirects=False, timeout=self.timeout) as c:
            form = c.get("/login")
            r = c.post(
                "/login",
                data={"user": name, "password": PASSWORDS[name], "csrf": csrf_of(form.text)},
            )
            assert r.status_code == 303, r.text
            yield c
