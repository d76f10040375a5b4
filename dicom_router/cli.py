"""CLI commands for DICOM: echo and send to a peer, and the per-study forwarding queue.

Touches: network (echo, send), files (the files sent, TLS certificates, config),
DB (queue reads).

The ``eai dicom`` group: a plugin command (:class:`eai.registry.CommandSpec`, declared
in :data:`eai.plugins.COMMANDS`), imported only when it runs.

``echo`` and ``send`` speak DICOM TLS (PS3.15 B.12) with ``--tls`` (system CAs),
``--ca`` (implies ``--tls``), and ``--cert``/``--key`` for a client certificate,
as ``eai send`` does for MLLP.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import click

from eai.cli import (
    CONFIG_OPTION,
    emit_json,
    open_store,
    parse_time,
    read_config,
    tls_client_context,
    tls_client_options,
)
from eai.errors import EaiError

if TYPE_CHECKING:
    from dicom_router.client import Peer

__all__ = ["dicom"]


@click.group()
def dicom() -> None:
    """DICOM: C-ECHO and C-STORE to a peer, the forwarding queue per study."""


def _peer(value: str) -> Peer:
    from dicom_router.client import parse_peer

    try:
        return parse_peer(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@dicom.command("echo")
@click.argument("peer")
@click.option("--calling-ae", default="EAI", show_default=True, help="our AE title")
@click.option("--timeout", default=10.0, show_default=True, help="seconds per step")
@tls_client_options
def echo_cmd(
    peer: str,
    calling_ae: str,
    timeout: float,
    tls: bool,
    ca: Path | None,
    cert: Path | None,
    key: Path | None,
) -> None:
    """C-ECHO PEER (AE@HOST:PORT); exit 0 when it answers success."""
    from dicom_router.client import echo

    target = _peer(peer)
    context = tls_client_context(tls, ca, cert, key)
    try:
        status = echo(target, calling_ae, timeout, tls=context)
    except OSError as exc:
        raise EaiError(f"{target}: {exc}") from exc
    click.echo(f"{target}: C-ECHO status 0x{status:04X}")
    if status != 0:
        raise SystemExit(1)


@dicom.command("send")
@click.argument("peer")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--calling-ae", default="EAI", show_default=True, help="our AE title")
@click.option("--timeout", default=30.0, show_default=True, help="seconds per step")
@tls_client_options
def send_cmd(
    peer: str,
    paths: tuple[Path, ...],
    calling_ae: str,
    timeout: float,
    tls: bool,
    ca: Path | None,
    cert: Path | None,
    key: Path | None,
) -> None:
    """C-STORE FILES and DIRECTORIES (recursively) to PEER (AE@HOST:PORT), as they are.

    Prints one line per failed file; exit 1 if any failed.
    """
    from dicom_router.client import SendResult, list_files, send_files

    target = _peer(peer)
    context = tls_client_context(tls, ca, cert, key)
    files = list_files(paths)
    if not files:
        raise EaiError("no file to send")
    failed: list[SendResult] = []
    with click.progressbar(
        length=len(files), label=f"sending to {target}", file=sys.stderr, show_pos=True
    ) as bar:

        def progress(result: SendResult) -> None:
            if not result.ok:
                failed.append(result)
            bar.update(1)

        results = send_files(target, files, calling_ae, timeout, progress, tls=context)
    reasons = {r.detail for r in failed}
    if len(failed) == len(results) and len(reasons) == 1 and not any(r.ok for r in results):
        (why,) = reasons
        if why.startswith("cannot connect"):  # one line, as eai send says it, not one per file
            raise EaiError(f"{target}: {why} ({len(failed)} file(s) not sent)")
    for r in failed:
        click.echo(f"{r.path}: {r.detail}", err=True)
    click.echo(f"{len(results) - len(failed)} sent, {len(failed)} failed")
    if failed:
        raise SystemExit(1)


_STATES = ("pending", "retrying", "held", "delivered", "dead")


@dicom.command("queue")
@CONFIG_OPTION
@click.option("--since", help="only instances received since (ISO time, or 2h, 1d ago)")
@click.option("--json", "as_json", is_flag=True)
def queue_cmd(config_path: Path, since: str | None, as_json: bool) -> None:
    """Forwarding progress per destination and study: instances pending, delivered, dead."""
    from eai.store import content_deliveries

    store = open_store(read_config(config_path))
    try:
        rows = content_deliveries(store.engine, "dicom", parse_time(since))
        table: dict[tuple[str, str], dict[str, int]] = defaultdict(
            lambda: dict.fromkeys(_STATES, 0)
        )
        for destination, status, _message_id, sealed in rows:
            try:
                ref = json.loads(store.cipher.open(sealed))
                study = str(ref.get("study_instance_uid", "")) or "?"
            except (ValueError, AttributeError):
                study = "?"
            counts = table[(destination, study)]
            counts[status] = counts.get(status, 0) + 1
    finally:
        store.engine.dispose()
    out = [
        {"destination": d, "study_instance_uid": s, **counts}
        for (d, s), counts in sorted(table.items())
    ]
    if as_json:
        emit_json(out)
        return
    if not out:
        click.echo("no DICOM delivery", err=True)
        return
    click.echo(
        f"{'DESTINATION':16} {'STUDY INSTANCE UID':64} {'PENDING':>7} {'RETRY':>5} "
        f"{'HELD':>5} {'DONE':>6} {'DEAD':>5}"
    )
    for row in out:
        click.echo(
            f"{row['destination']:16} {row['study_instance_uid']:64} {row['pending']:>7} "
            f"{row['retrying']:>5} {row['held']:>5} {row['delivered']:>6} {row['dead']:>5}"
        )
