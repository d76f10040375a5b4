"""``eai events list``: the engine-wide events, those of no message (config reloads).

Touches: DB (reads), files (config: its engine section only).
"""

from __future__ import annotations

from pathlib import Path

import click

from eai.cli._common import CONFIG_OPTION, emit_json, open_journal, parse_time

__all__ = ["events"]

KINDS = {
    "reload": ("config_reloaded", "config_reload_refused"),
    "config_reloaded": ("config_reloaded",),
    "config_reload_refused": ("config_reload_refused",),
}
"""``--kind`` values: an event kind, or ``reload`` for both kinds of reload."""


@click.group()
def events() -> None:
    """Engine-wide events (of no message): each reload of routes.yaml, applied or refused."""


@events.command("list")
@CONFIG_OPTION
@click.option(
    "--kind",
    type=click.Choice(sorted(KINDS)),
    help="reload: applied and refused; or one kind (default: every kind)",
)
@click.option("--since", help="ISO time or a duration ago (2h, 1d)")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True)
def list_cmd(
    config_path: Path, kind: str | None, since: str | None, limit: int, as_json: bool
) -> None:
    """List engine-wide events, newest first.

    A reload is config_reloaded (who asked, the file and its SHA-256, what changed) or
    config_reload_refused (who asked, the file, its FILE:LINE:COL issues); messages'
    own events are in eai messages show."""
    from eai.store import engine_events

    store = open_journal(config_path)  # the engine section alone: no plugin imported
    try:
        rows = engine_events(
            store.engine,
            kinds=KINDS[kind] if kind else (),
            since=parse_time(since),
            limit=limit,
        )
    finally:
        store.engine.dispose()
    if as_json:
        emit_json([row.to_json() for row in rows])
        return
    if not rows:
        click.echo("no event", err=True)
        return
    click.echo(f"{'ID':>8}  {'AT (UTC)':19}  {'KIND':22} DETAIL")
    for row in rows:
        at = row.at.isoformat(sep=" ", timespec="seconds")
        click.echo(f"{row.id:>8}  {at:19}  {row.kind:22} {row.detail}")
