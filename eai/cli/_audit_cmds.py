"""``eai audit``: read, check and export the audit trail of accesses to health data.

Touches: DB (reads the trail; ``export`` appends its own record), files (config).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from eai.cli._common import CONFIG_OPTION, emit_json, parse_time, require_config

if TYPE_CHECKING:
    from eai.config import EngineConfig
    from eai.store import Store

__all__ = ["audit"]


@click.group()
def audit() -> None:
    """The audit trail: who read or changed what, chained against tampering."""


def _open(config_path: Path) -> tuple[Store, EngineConfig]:
    """The journal and the engine section of routes.yaml (no plugin imported)."""
    from eai.cli._common import open_journal
    from eai.config import load_engine_config

    path = require_config(config_path)
    return open_journal(path), load_engine_config(path)


@audit.command("list")
@CONFIG_OPTION
@click.option("--since", help="ISO time or a duration ago (2h, 1d)")
@click.option("--actor", help="only this user or account (exact name)")
@click.option("--action", help="only this action (read-raw, replay, resend, ...)")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True)
def list_cmd(
    config_path: Path,
    since: str | None,
    actor: str | None,
    action: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Audit records, newest first."""
    from eai.store import list_audit

    store, _ = _open(config_path)
    try:
        rows = list_audit(
            store.engine, since=parse_time(since), actor=actor, action=action, limit=limit
        )
    finally:
        store.engine.dispose()
    if as_json:
        emit_json([r.to_json() for r in rows])
        return
    if not rows:
        click.echo("no audit record", err=True)
        return
    click.echo(f"{'SEQ':>7}  {'AT (UTC)':19}  {'ACTOR':16} {'ACTION':16} {'OUTCOME':8} TARGET")
    for r in rows:
        click.echo(
            f"{r.seq:>7}  {r.at.isoformat(sep=' ', timespec='seconds'):19}  "
            f"{r.actor.name[:16]:16} {r.entry.action:16} {r.entry.outcome:8} {r.entry.target}"
        )


@audit.command("verify")
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True)
def verify_cmd(config_path: Path, as_json: bool) -> None:
    """Walk the chain of records; exit 1 and name the first broken link when a record
    was deleted, edited or reordered."""
    from eai.store import verify_chain

    store, _ = _open(config_path)
    try:
        check = verify_chain(store.engine, store.cipher)
    finally:
        store.engine.dispose()
    if as_json:
        emit_json(
            {
                "ok": check.ok,
                "checked": check.checked,
                "first_seq": check.first_seq,
                "last_seq": check.last_seq,
                "broken_seq": check.broken_seq,
                "problem": check.problem or None,
            }
        )
    elif check.ok:
        span = f" (records {check.first_seq} to {check.last_seq})" if check.checked else ""
        click.echo(f"ok: {check.checked} record(s) chained{span}")
    else:
        click.echo(f"broken at record {check.broken_seq}: {check.problem}", err=True)
        if check.checked:
            click.echo(f"  records {check.first_seq} to {check.last_seq} are intact", err=True)
    if not check.ok:
        raise SystemExit(1)


@audit.command("export")
@CONFIG_OPTION
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["fhir"]),
    default="fhir",
    show_default=True,
    help="fhir: a FHIR R4 Bundle of AuditEvents (IHE BALP)",
)
@click.option("--since", help="ISO time or a duration ago (2h, 1d)")
@click.option("--actor", help="only this user or account (exact name)")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="file (default stdout)"
)
def export_cmd(
    config_path: Path, fmt: str, since: str | None, actor: str | None, output: Path | None
) -> None:
    """Export the trail as a FHIR R4 Bundle of AuditEvents; the export is itself audited
    (recorded before the records are read, so it is in the Bundle)."""
    from eai.audit import audit_bundle, os_user, record
    from eai.store import list_audit, utcnow

    store, engine_cfg = _open(config_path)
    try:
        filters = ", ".join(
            f for f in (f"since {since}" if since else "", f"actor {actor}" if actor else "") if f
        )
        record(
            store,
            os_user(),
            "export",
            target="audit trail",
            detail=f"format {fmt}" + (f"; {filters}" if filters else ""),
        )
        rows = list_audit(store.engine, since=parse_time(since), actor=actor, limit=None)
    finally:
        store.engine.dispose()
    bundle = audit_bundle(reversed(rows), engine_cfg.effective_node_id(), utcnow())
    text = json.dumps(bundle, ensure_ascii=False, indent=2)
    if output is None:
        click.echo(text)
    else:
        output.write_text(text + "\n", encoding="utf-8")
        click.echo(f"{len(rows)} record(s) written to {output}", err=True)
