"""CLI commands for support engineers: messages, replay, resend, queue.

Touches: DB (reads; replay/resend/pause write short transactions), files (config),
network (``messages show --raw`` asks the running engine over its admin socket).
"""

from __future__ import annotations

import base64
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import click

# eai.store imports a name's module when it is first used (``journal.resend``): listing
# messages loads the listing query, not the replay's, the outbox's or the claims'.
from eai import store as journal
from eai.cli._common import (
    CONFIG_OPTION,
    emit_json,
    journal_at,
    open_store,
    parse_time,
    read_config,
)
from eai.errors import NotFound
from eai.registry import listing_specs

__all__ = ["messages", "queue", "replay", "resend_cmd"]

STATUSES = click.Choice(["received", "processed", "filtered", "rejected"])


@click.group()
def messages() -> None:
    """Find and inspect journaled messages."""


@messages.command("list")
@CONFIG_OPTION
@click.option("--status", type=STATUSES)
@click.option("--since", help="ISO time or a duration ago (2h, 1d)")
@click.option("--until", help="ISO time or a duration ago")
@click.option("--listener")
@click.option("--type", "message_type", help="ADT^A01, ADT, or a pattern with *")
@click.option("--patient", help="any patient identifier of PID-3 (IPP, INS)")
@click.option(
    "--study",
    metavar="UID",
    help="DICOM instances of this Study Instance UID (scans the DICOM messages of the "
    "other filters: add --since on a large journal)",
)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True)
def list_cmd(
    config_path: Path,
    status: str | None,
    since: str | None,
    until: str | None,
    listener: str | None,
    message_type: str | None,
    patient: str | None,
    study: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List messages, newest first.

    A DICOM instance has a second line with its Study, Series and SOP Instance
    UIDs (in --json: study_instance_uid, series_instance_uid, sop_instance_uid,
    null for other messages).
    """
    # the engine section alone: no plugin imported for it; a SQLite journal is read with
    # sqlite3 (no SQLAlchemy), anything else as eai.store.Store opens it
    database, data_dir = journal_at(config_path)
    rows = journal.read_messages(
        database,
        data_dir,
        os.environ.get("EAI_KEY"),
        status=status,
        since=parse_time(since),
        until=parse_time(until),
        listener=listener,
        message_type=message_type,
        patient=patient,
        where_field=None if study is None else ("study_instance_uid", study),
        limit=limit,
    )
    if as_json:
        emit_json([m.to_json() for m in rows])
        return
    if not rows:
        click.echo("no message", err=True)
        return
    click.echo(
        f"{'ID':>8}  {'RECEIVED (UTC)':19}  {'LISTENER':14} {'TYPE':10} {'CONTROL ID':14} "
        f"{'STATUS':9} DELIVERIES"
    )
    specs = listing_specs()
    for m in rows:
        dl = ", ".join(f"{d.destination}:{d.status}({d.attempts})" for d in m.deliveries) or "-"
        click.echo(
            f"{m.id:>8}  {m.received_at[:19]:19}  {m.listener[:14]:14} "
            f"{m.message_type[:10]:10} {m.control_id[:14]:14} {m.status:9} {dl}"
        )
        spec = specs.get(m.content_type)
        if spec is not None:
            click.echo(f"{'':10}{spec.line(m.fields)}")


@messages.command("show")
@CONFIG_OPTION
@click.argument("message_id", type=int)
@click.option(
    "--raw",
    is_flag=True,
    help="print the payload too: served by the running engine, which records who reads it",
)
@click.option("--reason", default="", help="with --raw: why you read it (kept in the record)")
@click.option(
    "--break-glass",
    is_flag=True,
    help="with --raw, root only, when the engine cannot answer: read with the key directly "
    "(recorded too)",
)
@click.option("--json", "as_json", is_flag=True)
def show_cmd(
    config_path: Path,
    message_id: int,
    raw: bool,
    reason: str,
    break_glass: bool,
    as_json: bool,
) -> None:
    """A message's journey, event by event.

    With --raw, the payload is asked of the running engine over its admin socket
    (engine.admin_socket): the engine names the reader as the kernel identifies
    them and records the access before it answers. Without a running engine,
    only root can read, with --break-glass (README, "Audited access to health data").
    """
    if (reason or break_glass) and not raw:
        raise click.UsageError("--reason and --break-glass go with --raw")
    from eai.admin import break_glass_read  # here: the other commands do not load it
    from eai.admin import request as admin_request

    config = read_config(config_path)
    payload: bytes | None = None
    if raw and break_glass:
        data, payload = break_glass_read(config, message_id, reason, os.environ.get("EAI_KEY"))
    elif raw:
        answer = admin_request(
            config.engine.admin_socket_path(),
            {"op": "raw", "message_id": message_id, "reason": reason},
        )
        data, payload = answer["message"], base64.b64decode(answer["payload"])
    else:
        store = open_store(config)
        try:
            data = journal.message_detail(store.engine, message_id, store.cipher).to_json(
                with_events=True
            )
        finally:
            store.engine.dispose()
    if as_json:
        if payload is not None:
            data["raw"] = payload.decode("utf-8", "replace")
        emit_json(data)
        return
    _print_journey(data)
    if payload is not None:
        click.echo("raw:")
        click.echo(payload.decode("utf-8", "replace").replace("\r", "\n"))


def _print_journey(data: dict[str, Any]) -> None:
    """A message's journey (:meth:`MessageView.to_json` with events), in text."""
    click.echo(
        f"message {data['id']}  {data['message_type']}  control id {data['control_id']}  "
        f"status {data['status']}"
    )
    click.echo(
        f"  received {data['received_at']} on {data['listener']} from "
        f"{data['sending_application']}/{data['sending_facility']} ({data['size']} bytes)"
    )
    spec = listing_specs().get(data["content_type"])
    if spec is not None:
        click.echo(f"  {spec.line(data)}")
    if data["reject_reason"]:
        click.echo(f"  rejected: {data['reject_reason']}")
    click.echo("journey:")
    for e in data["events"]:
        dl = f" [delivery {e['delivery_id']}]" if e["delivery_id"] else ""
        click.echo(f"  {e['at'][:23]}  {e['kind']:13}{dl} {e['detail']}")
    if data["deliveries"]:
        click.echo("deliveries:")
        for d in data["deliveries"]:
            extra = f" next {d['next_attempt_at'][:19]}" if d["next_attempt_at"] else ""
            err = f" last error: {d['last_error']}" if d["last_error"] else ""
            click.echo(
                f"  {d['id']:>6} {d['destination']:14} {d['status']:9} "
                f"attempts {d['attempts']}{extra}{err}"
            )


@click.command()
@CONFIG_OPTION
@click.argument("ids", nargs=-1, type=int)
@click.option("--status", type=STATUSES)
@click.option("--since")
@click.option("--until")
@click.option("--listener")
@click.option("--type", "message_type")
@click.option("--dry-run", is_flag=True, help="print what would be routed where; send nothing")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@click.option("--json", "as_json", is_flag=True)
def replay(
    config_path: Path,
    ids: tuple[int, ...],
    status: str | None,
    since: str | None,
    until: str | None,
    listener: str | None,
    message_type: str | None,
    dry_run: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """Run journaled messages through today's routes.yaml again.

    Each replayed message gets a ``replayed`` event naming who replayed it, its status
    before, and the config (path and SHA-256 of the file); an identity anomaly it
    already has is not recorded, nor mailed, again. --dry-run writes nothing."""
    if not ids and not (status or since or until or listener or message_type):
        raise click.UsageError("give message ids or at least one filter (--status, --since, ...)")
    from eai.pipeline import plan_all  # here: the other commands do not load the pipeline

    config = read_config(config_path)
    config_sha256 = hashlib.sha256(config_path.read_bytes()).hexdigest()
    store = open_store(config)
    try:
        if ids:
            selected = list(ids)
        else:
            views = journal.list_messages(
                store.engine,
                store.cipher,
                status=status,
                since=parse_time(since),
                until=parse_time(until),
                listener=listener,
                message_type=message_type,
                limit=None,
                oldest_first=True,
                with_fields=False,
            )
            selected = [v.id for v in views]
        if not selected:
            click.echo("no message matches", err=True)
            return
        if (
            not dry_run
            and not yes
            and not click.confirm(
                f"replay {len(selected)} message(s) through {config_path}?", err=True
            )
        ):
            raise SystemExit(1)
        report: list[dict[str, object]] = []
        chunk = 200
        with click.progressbar(
            length=len(selected),
            label="planning (dry run)" if dry_run else "replaying",
            file=sys.stderr,
            show_pos=True,
        ) as bar:
            for start in range(0, len(selected), chunk):
                part = journal.messages_for_replay(store.engine, selected[start : start + chunk])
                plans = plan_all(config, store.cipher, part)
                if not dry_run:
                    journal.replay_plans(
                        store.engine,
                        plans,
                        config_path=str(config_path.resolve()),
                        config_sha256=config_sha256,
                        cipher=store.cipher,
                    )
                for p in plans:
                    report.append(
                        {
                            "id": p.message_id,
                            "status": p.status,
                            "routes": list(p.routes),
                            "destinations": [d.destination for d in p.deliveries],
                            "reason": p.reason,
                        }
                    )
                bar.update(len(part))
    finally:
        store.engine.dispose()
    if as_json:
        emit_json(report)
        return
    verb = "would go" if dry_run else "queued"
    for r in report:
        dests = ", ".join(r["destinations"]) or "nowhere"  # type: ignore[arg-type]
        why = f" ({r['reason']})" if r["reason"] else ""
        click.echo(f"message {r['id']}: {r['status']}, {verb} to {dests}{why}")


@click.command("resend")
@CONFIG_OPTION
@click.argument("delivery_ids", nargs=-1, type=int, required=True)
def resend_cmd(config_path: Path, delivery_ids: tuple[int, ...]) -> None:
    """Send deliveries again, exactly as they were."""
    store = open_store(read_config(config_path))
    try:
        created = journal.resend(store.engine, delivery_ids, cipher=store.cipher)
    finally:
        store.engine.dispose()
    for old, new in zip(delivery_ids, created, strict=True):
        click.echo(f"delivery {old} queued again as delivery {new}")


@click.group()
def queue() -> None:
    """Outbox queues per destination."""


@queue.command("list")
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True)
def queue_list(config_path: Path, as_json: bool) -> None:
    """Deliveries per destination and state: pending (depth, of which retrying), held
    (waiting for a qualified identity: eai identity release), dead, delivered, and the
    oldest pending one's age."""
    config = read_config(config_path)
    store = open_store(config)
    try:
        stats = journal.queue_stats(store.engine, [d.name for d in config.destinations])
    finally:
        store.engine.dispose()
    if as_json:
        emit_json([s.to_json() for s in stats])
        return
    click.echo(
        f"{'DESTINATION':16} {'STATE':12} {'DEPTH':>7} {'RETRYING':>8} {'HELD':>6} "
        f"{'DEAD':>6} {'DELIVERED':>9}  OLDEST PENDING"
    )
    for s in stats:
        age = "-" if s.oldest_pending_age_s is None else f"{s.oldest_pending_age_s:.0f}s"
        click.echo(
            f"{s.destination:16} {s.state:12} {s.depth:>7} {s.retrying:>8} {s.held:>6} "
            f"{s.dead:>6} {s.delivered:>9}  {age}"
        )


def _set_paused(config_path: Path, destination: str, paused: bool) -> None:
    """Reads the config once, checks the destination exists, records the new state."""
    config = read_config(config_path)
    if destination not in {d.name for d in config.destinations}:
        raise NotFound(f"unknown destination {destination!r} in {config_path}")
    store = open_store(config)
    try:
        journal.set_paused(store.engine, destination, paused, cipher=store.cipher)
    finally:
        store.engine.dispose()
    click.echo(f"{destination} {'paused' if paused else 'resumed'}")


@queue.command("pause")
@CONFIG_OPTION
@click.argument("destination")
def queue_pause(config_path: Path, destination: str) -> None:
    """Stop sending to DESTINATION (messages keep queueing)."""
    _set_paused(config_path, destination, True)


@queue.command("resume")
@CONFIG_OPTION
@click.argument("destination")
def queue_resume(config_path: Path, destination: str) -> None:
    """Send to DESTINATION again."""
    _set_paused(config_path, destination, False)
