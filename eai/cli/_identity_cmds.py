"""CLI commands about patient identity: INS checks, anomalies, releasing held deliveries.

Touches: DB (anomalies, release), files (config).
"""

from __future__ import annotations

from pathlib import Path

import click

from eai.cli._common import CONFIG_OPTION, emit_json, open_store, parse_time, read_config
from eai.store._anomalies import list_anomalies
from eai.store._read import release
from identity.ins import check_ins

__all__ = ["identity"]


@click.group()
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
        n = release(store.engine, delivery_ids)
    finally:
        store.engine.dispose()
    click.echo(f"{n} delivery(ies) released")
