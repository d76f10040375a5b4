"""Console accounts: names, roles, password hashes, lock-out state.

Touches: DB (short transactions of its own; safe while the engine runs).

The hash is computed and checked by :mod:`eai.console` (Argon2id); this module only
keeps it. A failed login counts against the account; ``lock_after`` failures in a row
lock it until ``locked_until`` (a success resets the count).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Row, case, insert, literal, null, select, update
from sqlalchemy.exc import IntegrityError

from eai.errors import EaiError, NotFound
from eai.store._journal import utcnow
from eai.store._schema import accounts

__all__ = [
    "ROLES",
    "AccountView",
    "add_account",
    "disable_account",
    "get_account",
    "list_accounts",
    "login_failed",
    "login_succeeded",
    "set_password",
]

ROLES = ("viewer", "operator", "admin")
"""From the least to the most allowed: a role may do everything a lower one may."""


@dataclass(frozen=True)
class AccountView:
    name: str
    role: str
    password_hash: str
    disabled: bool
    failures: int
    locked_until: datetime | None
    created_at: datetime
    last_login_at: datetime | None

    def locked(self, now: datetime | None = None) -> bool:
        return self.locked_until is not None and self.locked_until > (now or utcnow())

    def to_json(self) -> dict[str, object]:
        """Everything but the hash."""
        return {
            "name": self.name,
            "role": self.role,
            "disabled": self.disabled,
            "locked": self.locked(),
            "failures": self.failures,
            "created_at": self.created_at.isoformat(),
            "last_login_at": None if self.last_login_at is None else self.last_login_at.isoformat(),
        }


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise EaiError(f"unknown role {role!r}: one of {', '.join(ROLES)}")


def add_account(engine: Engine, name: str, role: str, password_hash: str) -> None:
    _check_role(role)
    now = utcnow()
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(accounts).values(
                    name=name,
                    role=role,
                    password_hash=password_hash,
                    disabled=False,
                    failures=0,
                    created_at=now,
                    updated_at=now,
                )
            )
    except IntegrityError:
        raise EaiError(
            f"account {name!r} exists (eai users passwd to change its password)"
        ) from None


def _update(engine: Engine, name: str, **values: object) -> None:
    with engine.begin() as conn:
        done = conn.execute(
            update(accounts).where(accounts.c.name == name).values(updated_at=utcnow(), **values)
        ).rowcount
    if not done:
        raise NotFound(f"no account {name!r}")


def set_password(engine: Engine, name: str, password_hash: str, role: str | None = None) -> None:
    """A new password (and role, if given); unlocks the account."""
    extra: dict[str, object] = {}
    if role is not None:
        _check_role(role)
        extra["role"] = role
    _update(engine, name, password_hash=password_hash, failures=0, locked_until=None, **extra)


def disable_account(engine: Engine, name: str) -> None:
    _update(engine, name, disabled=True)


def _view(r: Row[Any]) -> AccountView:
    return AccountView(
        r.name,
        r.role,
        r.password_hash,
        bool(r.disabled),
        r.failures,
        r.locked_until,
        r.created_at,
        r.last_login_at,
    )


def get_account(engine: Engine, name: str) -> AccountView | None:
    with engine.connect() as conn:
        r = conn.execute(select(accounts).where(accounts.c.name == name)).first()
    return None if r is None else _view(r)


def list_accounts(engine: Engine) -> list[AccountView]:
    with engine.connect() as conn:
        return [_view(r) for r in conn.execute(select(accounts).order_by(accounts.c.name))]


def login_failed(engine: Engine, name: str, lock_after: int, lock_for: float) -> bool:
    """Counts a failed login; True when this failure locks the account (for ``lock_for``
    seconds, after ``lock_after`` failures in a row). No account: False, nothing kept.

    One ``UPDATE ... SET failures = failures + 1 ... RETURNING``: the database counts,
    so failures at the same instant are each counted (a read then a write lost some on
    SQLite, where ``FOR UPDATE`` locks nothing), and exactly one of them locks."""
    counted = accounts.c.failures + 1
    locks = counted >= lock_after
    until = literal(utcnow() + timedelta(seconds=lock_for), accounts.c.locked_until.type)
    with engine.begin() as conn:
        r = conn.execute(
            update(accounts)
            .where(accounts.c.name == name)
            .values(
                failures=case((locks, 0), else_=counted),
                locked_until=case((locks, until), else_=null()),
            )
            .returning(accounts.c.locked_until)
        ).first()
    return r is not None and r.locked_until is not None


def login_succeeded(engine: Engine, name: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(accounts)
            .where(accounts.c.name == name)
            .values(failures=0, locked_until=None, last_login_at=utcnow())
        )
