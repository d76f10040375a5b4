"""CLI commands about patient identity: INS checks, anomalies, releasing held deliveries,
cross-references.

Touches: DB (anomalies, release, cross-references), files (config).

``eai identity standin`` (the demo identity server) is a command of :mod:`standins`,
declared in :data:`eai.plugins.COMMANDS` and listed here by :class:`~eai.cli._lazy.LazyGroup`.
"""

from __future__ import annotations

from pathlib import Path

import click

from eai.cli._common import CONFIG_OPTION, emit_json, open_store, parse_time, read_config
from eai.cli._lazy import LazyGroup
from eai.errors import NotFound
from eai.store import list_anomalies, release, xref_lookup
from identity.ins import check_ins

__all__ = ["identity"]


@click.group(cls=LazyGroup, plugin_path="identity")
def identity() -> None:
    """Patient identity: INS checks, charter anomalies, held deliveries."""


@identity.command("check-ins")
@click.argument("number")
@click.option("--oid", help="the INS OID (1.2.250.1.213.1.4.8 NIR, .9 NIA, .10 test, .11 demo)")
@click.option("--test-feed", is_flag=True, help="accept the test and demo OIDs")
def check_ins_cmd(number: str, oid: str | None, test_feed: bool) -> None:
    """Say whether NUMBER is a valid INS (key, shape, OID); exit 0 if valid, 1 if not."""
    result = check_ins(number, oid, allow_test_oids=test_feed)
    click.echo(str(result))
    if not result.valid:
        raise SystemExit(1)


@identity.command("anomalies")
@CONFIG_OPTION
@click.option("--facility", help="establishment (MSH-4)")
@click.option("--since", help="ISO time or a duration ago (2h, 1d)")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True)
def anomalies_cmd(
    config_path: Path, facility: str | None, since: str | None, limit: int, as_json: bool
) -> None:
    """Identity anomalies found in the flows, newest first."""
    store = open_store(read_config(config_path))
    try:
        rows = list_anomalies(store.engine, facility=facility, since=parse_time(since), limit=limit)
    finally:
        store.engine.dispose()
    if as_json:
        emit_json([r.to_json() for r in rows])
        return
    if not rows:
        click.echo("no anomaly", err=True)
        return
    for r in rows:
        mailed = "mailed" if r.notified_at else "to mail"
        click.echo(
            f"{r.at:%Y-%m-%d %H:%M:%S}  {r.facility:12} message {r.message_id} "
            f"(MSH-10 {r.control_id})  {r.rule} [{r.severity}, {mailed}]"
        )
        click.echo(f"    {r.explanation}")


@identity.command("release")
@CONFIG_OPTION
@click.argument("delivery_ids", nargs=-1, type=int, required=True)
def release_cmd(config_path: Path, delivery_ids: tuple[int, ...]) -> None:
    """Release held deliveries (after checking the identity by hand)."""
    store = open_store(read_config(config_path))
    try:
        n = release(store.engine, delivery_ids, cipher=store.cipher)
    finally:
        store.engine.dispose()
    click.echo(f"{n} delivery(ies) released")


@identity.command("lookup")
@CONFIG_OPTION
@click.option("--facility", required=True, help="establishment (MSH-4)")
@click.option("--local-id", required=True, help="the establishment's patient id (IPP, PID-3)")
@click.option("--json", "as_json", is_flag=True)
def lookup_cmd(config_path: Path, facility: str, local_id: str, as_json: bool) -> None:
    """The cross-reference of a local patient id: regional id, INS, merges, history.

    Exit 4 when the journal has no cross-reference for it.
    """
    from eai.audit import os_user, record  # the INS is shown in clear: recorded first

    store = open_store(read_config(config_path))
    try:
        record(
            store,
            os_user(),
            "identity-lookup",
            target=f"facility {facility}",
            patient=store.cipher.hash_id(local_id),
        )
        view = xref_lookup(store.engine, store.cipher, facility, local_id)
    finally:
        store.engine.dispose()
    if not view.known:
        raise NotFound(f"no cross-reference for this local id at {facility}")
    if as_json:
        emit_json(view.to_json())
        return
    click.echo(f"facility     {view.facility}")
    click.echo(f"local id     {view.local_id}")
    if view.stands_for:
        click.echo(f"stands for   {view.stands_for} (merged or renamed)")
    click.echo(f"regional id  {view.regional_id or '-'}")
    click.echo(
        f"INS          {view.ins or '-'}" + (f" (OID {view.ins_oid})" if view.ins_oid else "")
    )
    click.echo("history")
    for h in view.history:
        until = f"{h.valid_to:%Y-%m-%d %H:%M:%S}" if h.valid_to else "now"
        alias = f" -> {h.alias_of}" if h.alias_of else ""
        click.echo(
            f"  {h.valid_from:%Y-%m-%d %H:%M:%S} .. {until:19}  {h.reason:11} "
            f"regional {h.regional_id or '-'}{alias}"
        )
    for m in view.merges:
        what = "merge (A40)" if m.kind == "A40" else "id change (A47)"
        click.echo(
            f"  {m.at:%Y-%m-%d %H:%M:%S} {what}: {m.merged} -> {m.surviving}"
            f" (regional {m.regional_before or '-'} -> {m.regional_after or '-'})"
        )
