"""``eai identity standin``: run the identity-server stand-in from a JSON file of patients.

Touches: files (the patients), network (listens until Ctrl-C or SIGTERM).

A command of the demo package, declared in :data:`eai.plugins.COMMANDS` (so the core
does not import :mod:`standins`) and imported only when it runs.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import click

from eai.errors import ConfigError, ConfigIssue
from standins.identity import StandinServer, StandinService

__all__ = ["standin"]


@click.command("standin")
@click.option(
    "--patients",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON file of patients (see standins/identity/__init__.py)",
)
@click.option("--port", default=0, show_default=True, type=click.IntRange(0, 65535))
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--base", default="/fhir", show_default=True, help="FHIR base path")
def standin(patients: Path, port: int, host: str, base: str) -> None:
    """Run the identity-server stand-in (PDQm + PIXm, for tests and the demo; NOT a real
    identity server). Stops on Ctrl-C or SIGTERM."""
    try:
        service = StandinService.from_file(patients, base=base)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            [ConfigIssue(str(patients), 1, 1, f"cannot read patients: {exc}")]
        ) from exc

    async def serve() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        async with StandinServer(service, host=host, port=port) as server:
            click.echo(f"identity stand-in (not a real identity server) on {server.url}", err=True)
            click.echo(f"regional_id_system: {service.regional_system}", err=True)
            await stopping.wait()
        click.echo(
            f"stopped after {service.request_count} request(s), {len(service.violations)} refused",
            err=True,
        )

    asyncio.run(serve())
