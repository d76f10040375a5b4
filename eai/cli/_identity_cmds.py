"""CLI commands about patient identity: INS checks.

Touches: nothing.
"""

from __future__ import annotations

import click

from identity.ins import check_ins

__all__ = ["identity"]


@click.group()
def identity() -> None:
    """Patient identity: INS checks."""


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
