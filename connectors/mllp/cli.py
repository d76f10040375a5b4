"""``eai send``: the MLLP test client (send HL7 v2 files to a peer, print each MSA).

Touches: files (the messages sent, TLS certificates), network.

A plugin command (:class:`eai.registry.CommandSpec`, declared in
:data:`eai.plugins.COMMANDS`), imported only when it runs.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from connectors.mllp.client import send_messages, split_file
from eai.cli import tls_client_context, tls_client_options
from eai.errors import ConfigError, ConfigIssue, EaiError

__all__ = ["send"]


def _address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"{value!r}: expected HOST:PORT")
    return host, int(port)


@click.command()
@click.argument("address")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--timeout", default=30.0, show_default=True, help="seconds to wait for each ACK")
@tls_client_options
def send(
    address: str,
    files: tuple[Path, ...],
    timeout: float,
    tls: bool,
    ca: Path | None,
    cert: Path | None,
    key: Path | None,
) -> None:
    """MLLP test client: send each message of FILES to HOST:PORT, print each MSA.

    Exit 0 only if every acknowledgement was AA or CA.
    """
    host, port = _address(address)
    payloads: list[bytes] = []
    for f in files:
        try:
            data = f.read_bytes()
        except OSError as exc:
            raise ConfigError([ConfigIssue(str(f), 1, 1, exc.strerror or str(exc))]) from exc
        msgs = split_file(data)
        if not msgs:
            issue = ConfigIssue(str(f), 1, 1, "no HL7 message (no line starts with MSH)")
            raise ConfigError([issue])
        payloads.extend(msgs)
    ctx = tls_client_context(tls, ca, cert, key)
    try:
        acks = asyncio.run(send_messages(host, port, payloads, timeout=timeout, tls=ctx))
    except (OSError, TimeoutError) as exc:
        raise EaiError(f"cannot send to {host}:{port}: {exc or type(exc).__name__}") from exc
    ok = True
    for ack in acks:
        line = f"MSA|{ack.code}|{ack.control_id}"
        if ack.text:
            line += f"|{ack.text}"
        click.echo(line)
        ok = ok and ack.code in ("AA", "CA")
    if len(acks) < len(payloads):
        click.echo(f"eai: {len(payloads) - len(acks)} message(s) got no acknowledgement", err=True)
        ok = False
    if not ok:
        raise SystemExit(1)
