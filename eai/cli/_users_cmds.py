"""``eai users``: the web console's accounts (add, passwd, disable, list).

Touches: DB (the accounts table of the journal), files (config), stdin (passwords).

A password is asked twice on a terminal; otherwise it is the first line of standard
input, so scripts can create accounts (``echo "$PW" | eai users add ...``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from eai.cli._common import CONFIG_OPTION, emit_json, open_journal

if TYPE_CHECKING:
    from eai.store import Store

__all__ = ["users"]

ROLE = click.Choice(["viewer", "operator", "admin"])


def _password() -> str:
    if sys.stdin.isatty():
        value: str = click.prompt("password", hide_input=True, confirmation_prompt=True)
        return value
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise click.UsageError("no password on standard input")
    return line


def _audited(store: Store, name: str, detail: str) -> None:
    """The change in the audit trail (``account-change``), by the OS user who ran it."""
    from eai.audit import os_user, record

    record(store, os_user(), "account-change", target=f"account {name}", detail=detail)


@click.group()
def users() -> None:
    """Web console accounts: viewer (no payloads), operator (actions, payloads with a
    reason), admin (audit trail)."""


@users.command("add")
@CONFIG_OPTION
@click.argument("name")
@click.option("--role", type=ROLE, required=True)
def add_cmd(config_path: Path, name: str, role: str) -> None:
    """Create account NAME with ROLE; its password from the terminal or stdin."""
    from eai.console import hash_password
    from eai.store import add_account

    if not name.isprintable() or not 0 < len(name) <= 64 or " " in name:
        raise click.BadParameter("1 to 64 printable characters, no space", param_hint="NAME")
    digest = hash_password(_password())
    store = open_journal(config_path)
    try:
        add_account(store.engine, name, role, digest)
        _audited(store, name, f"added, role {role}")
    finally:
        store.engine.dispose()
    click.echo(f"account {name} added ({role})")


@users.command("passwd")
@CONFIG_OPTION
@click.argument("name")
@click.option("--role", type=ROLE, help="change its role too")
def passwd_cmd(config_path: Path, name: str, role: str | None) -> None:
    """Set NAME's password (and unlock it)."""
    from eai.console import hash_password
    from eai.store import set_password

    digest = hash_password(_password())
    store = open_journal(config_path)
    try:
        set_password(store.engine, name, digest, role)
        _audited(store, name, "password set, unlocked" + (f", role {role}" if role else ""))
    finally:
        store.engine.dispose()
    click.echo(f"password of {name} changed")


@users.command("disable")
@CONFIG_OPTION
@click.argument("name")
def disable_cmd(config_path: Path, name: str) -> None:
    """Disable NAME: it can no longer log in (its open sessions end at their next page)."""
    from eai.store import disable_account

    store = open_journal(config_path)
    try:
        disable_account(store.engine, name)
        _audited(store, name, "disabled")
    finally:
        store.engine.dispose()
    click.echo(f"account {name} disabled")


@users.command("list")
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True)
def list_cmd(config_path: Path, as_json: bool) -> None:
    """The accounts, their role and state."""
    from eai.store import list_accounts

    store = open_journal(config_path)
    try:
        rows = list_accounts(store.engine)
    finally:
        store.engine.dispose()
    if as_json:
        emit_json([a.to_json() for a in rows])
        return
    click.echo(f"{'NAME':20} {'ROLE':9} {'STATE':9} LAST LOGIN (UTC)")
    for a in rows:
        state = "disabled" if a.disabled else ("locked" if a.locked() else "active")
        last = "-" if a.last_login_at is None else a.last_login_at.isoformat()[:19]
        click.echo(f"{a.name:20} {a.role:9} {state:9} {last}")
