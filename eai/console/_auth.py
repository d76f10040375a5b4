"""Console accounts: Argon2id passwords, logins with lock-out, sessions, roles.

Touches: DB (accounts, audit records through :mod:`eai.audit`).

Every login, failed login and lock-out writes an audit record naming the account and
the address it came from. Sessions live in this process's memory: a restart of the
engine logs everyone out.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from eai import audit
from eai.config import ConsoleConfig
from eai.errors import EaiError
from eai.store import ROLES, Store, get_account, login_failed, login_succeeded

__all__ = [
    "MIN_PASSWORD",
    "LoginRefused",
    "Session",
    "Sessions",
    "authenticate",
    "hash_password",
    "role_allows",
]

MIN_PASSWORD = 12
_HASHER = PasswordHasher()  # Argon2id, argon2-cffi's RFC 9106 low-memory profile
_DUMMY = _HASHER.hash("not a password of anyone")


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise EaiError(f"a password has at least {MIN_PASSWORD} characters")
    return _HASHER.hash(password)


def role_allows(role: str, needed: str) -> bool:
    """True when ``role`` is ``needed`` or above it (viewer < operator < admin)."""
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


class LoginRefused(Exception):
    """The login page's answer; the text never says which of name or password was wrong."""


def authenticate(store: Store, cfg: ConsoleConfig, name: str, password: str, peer: str) -> str:
    """The account's role when ``name`` / ``password`` may log in; else
    :class:`LoginRefused`. Audited either way (``login`` / ``login-failed``)."""
    actor = audit.account(name[:64], peer)
    account = get_account(store.engine, name) if name else None
    if account is None:
        _verify(_DUMMY, password)  # the same time as a wrong password: no account probing
        audit.record(store, actor, "login-failed", outcome="failure", detail="unknown account")
        raise LoginRefused("wrong user name or password")
    if account.disabled:
        audit.record(store, actor, "login-failed", outcome="denied", detail="account disabled")
        raise LoginRefused("wrong user name or password")
    if account.locked():
        audit.record(store, actor, "login-failed", outcome="denied", detail="account locked")
        raise LoginRefused("this account is locked after repeated failures: try again later")
    if not _verify(account.password_hash, password):
        locks = login_failed(store.engine, name, cfg.lock_after, cfg.lock_for)
        why = (
            f"wrong password; account locked for {cfg.lock_for:g} s after {cfg.lock_after} failures"
            if locks
            else "wrong password"
        )
        audit.record(store, actor, "login-failed", outcome="failure", detail=why)
        if locks:
            raise LoginRefused("this account is locked after repeated failures: try again later")
        raise LoginRefused("wrong user name or password")
    login_succeeded(store.engine, name)
    audit.record(store, actor, "login", detail=f"role {account.role}")
    return account.role


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@dataclass
class Session:
    name: str
    role: str
    csrf: str
    peer: str
    created: float
    seen: float = field(default=0.0)


class Sessions:
    """Session tokens (random, 256 bits) to accounts, with an absolute and an idle expiry."""

    def __init__(self, ttl: float, idle: float) -> None:
        self.ttl = ttl
        self.idle = idle
        self._by_token: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, name: str, role: str, peer: str) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        now = time.monotonic()
        session = Session(name, role, secrets.token_urlsafe(32), peer, now, now)
        with self._lock:
            self._by_token[token] = session
        return token, session

    def get(self, token: str) -> Session | None:
        now = time.monotonic()
        with self._lock:
            session = self._by_token.get(token)
            if session is None:
                return None
            if now - session.created > self.ttl or now - session.seen > self.idle:
                del self._by_token[token]
                return None
            session.seen = now
            return session

    def close(self, token: str) -> Session | None:
        with self._lock:
            return self._by_token.pop(token, None)

    def close_account(self, name: str) -> None:
        with self._lock:
            for token in [t for t, s in self._by_token.items() if s.name == name]:
                del self._by_token[token]
