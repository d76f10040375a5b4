"""``eai alerts``: the technical alerts' states, and silences.

Touches: DB (reads the alerts; ``silence`` writes one row and its audit record), files
(the ``engine`` section of routes.yaml).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import click

from eai.cli._common import CONFIG_OPTION, emit_json, open_journal

__all__ = ["alerts"]


@click.group()
def alerts() -> None:
    """Technical alerts: states, mails, silences."""


@alerts.command("list")
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True)
@click.option("--all", "show_all", is_flag=True, help="also the rules and scopes that are ok")
def list_cmd(config_path: Path, as_json: bool, show_all: bool) -> None:
    """Each rule and scope: state (ok, pending, firing, resolved), since when, the last
    mail and how many were sent; then the active silences."""
    from eai.store import list_alerts, list_silences

    store = open_journal(config_path)
    try:
        rows = list_alerts(store.engine)
        silences = list_silences(store.engine)
    finally:
        store.engine.dispose()
    if as_json:
        emit_json(
            {
                "alerts": [r.to_json() for r in rows],
                "silences": [s.to_json() for s in silences],
            }
        )
        return
    shown = [r for r in rows if show_all or r.state != "ok"]
    if not shown:
        click.echo("no alert" + ("" if show_all else " (eai alerts list --all: every rule)"))
    else:
        click.echo(
            f"{'RULE':20} {'SCOPE':30} {'STATE':9} {'SINCE (UTC)':19}  {'LAST MAIL':19} "
            f"{'MAILS':>5}  VALUE"
        )
    for r in shown:
        last = "-" if r.last_mail_at is None else f"{r.last_mail_at:%Y-%m-%d %H:%M:%S}"
        click.echo(
            f"{r.rule:20} {r.scope[:30]:30} {r.state:9} {r.since:%Y-%m-%d %H:%M:%S}  "
            f"{last:19} {r.mails:>5}  {r.value}"
        )
    for s in silences:
        click.echo(
            f"silence {s.id}: {s.rule} on {s.scope or 'every scope'} until "
            f"{s.ends_at:%Y-%m-%d %H:%M:%S} UTC, by {s.author}: {s.reason}"
        )


@alerts.command("silence")
@CONFIG_OPTION
@click.argument("rule")
@click.option(
    "--scope",
    default="",
    help="destination:dcc, listener:adt, establishment:CHU-X, engine:journal...; "
    "default: every scope of RULE",
)
@click.option("--for", "duration", required=True, help="how long: 30m, 2h, 1d")
@click.option("--reason", required=True, help="why (kept with the silence)")
def silence_cmd(config_path: Path, rule: str, scope: str, duration: str, reason: str) -> None:
    """Mail nothing about RULE (* for every rule) on a scope for a while.

    No firing, repeat or resolved mail until it ends; the state is still kept. The
    silence is recorded in the audit trail (eai audit list) with the OS user who asked
    and the reason, in the same transaction."""
    from sqlalchemy import Connection

    from eai.alerts import RULES
    from eai.audit import os_user, record
    from eai.config import parse_duration
    from eai.store import Silence, add_silence, utcnow

    if rule != "*" and rule not in RULES:
        raise click.BadParameter(
            f"{rule!r}: one of {', '.join(sorted(RULES))} or *", param_hint="RULE"
        )
    try:
        seconds = parse_duration(duration)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--for") from exc
    if seconds <= 0:
        raise click.BadParameter("must be longer than 0", param_hint="--for")
    if not reason.strip():
        raise click.BadParameter("say why", param_hint="--reason")
    store = open_journal(config_path)
    actor = os_user()

    def audited(conn: Connection, s: Silence) -> object:
        return record(
            store,
            actor,
            "silence",
            target=f"{s.rule} {s.scope or '*'}",
            detail=f"silence {s.id} until {s.ends_at:%Y-%m-%dT%H:%M:%S}Z: {s.reason}",
            conn=conn,
        )

    try:
        silence = add_silence(
            store.engine,
            rule,
            scope,
            utcnow() + timedelta(seconds=seconds),
            actor.name,
            reason.strip(),
            audited,
        )
    finally:
        store.engine.dispose()
    click.echo(
        f"silence {silence.id}: {rule} on {scope or 'every scope'} until "
        f"{silence.ends_at:%Y-%m-%d %H:%M:%S} UTC, by {silence.author}"
    )


@alerts.command("unsilence")
@CONFIG_OPTION
@click.argument("silence_id", type=int)
def unsilence_cmd(config_path: Path, silence_id: int) -> None:
    """End silence SILENCE_ID now (eai alerts list shows the ids): its alerts mail again
    from the next evaluation. Recorded in the audit trail with the OS user who asked, in
    the same transaction (the console's "End now" does the same, naming its account)."""
    from eai.audit import os_user
    from eai.store import end_silence

    store = open_journal(config_path)
    try:
        silence = end_silence(store.engine, store.cipher, silence_id, os_user())
    finally:
        store.engine.dispose()
    click.echo(
        f"silence {silence.id} ended: {silence.rule} on {silence.scope or 'every scope'} "
        "mails again"
    )
