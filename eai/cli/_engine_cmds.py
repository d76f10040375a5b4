"""CLI commands that run or check the engine: run, check, schema.

Touches: files (config), network (run), DB (run).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import click

from eai.cli._common import CONFIG_OPTION, read_config, require_config
from eai.config import check_config, config_json_schema
from eai.errors import ConfigError

__all__ = ["check", "run", "schema"]


@click.command()
@CONFIG_OPTION
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
def run(config_path: Path, log_level: str) -> None:
    """Run the engine in the foreground (SIGTERM/SIGINT: stop cleanly, exit 0; SIGHUP or
    eai reload: re-read routes.yaml)."""
    from eai.engine import Engine

    logging.getLogger().setLevel(log_level.upper())
    config = read_config(config_path)
    engine = Engine(config, config_path=config_path)
    asyncio.run(engine.run(install_signals=True))


@click.command()
@CONFIG_OPTION
@click.argument("file", required=False, type=click.Path(path_type=Path))
@click.pass_context
def check(ctx: click.Context, config_path: Path, file: Path | None) -> None:
    """Validate routes.yaml (FILE, else -c): prints FILE:LINE:COLUMN: problem for each
    error, or ok."""
    if file is not None:
        if ctx.get_parameter_source("config_path") is click.core.ParameterSource.COMMANDLINE:
            raise click.UsageError("give the file once: as FILE or with -c, not both")
        config_path = file
    else:
        require_config(config_path)  # none: say where it looked, name -c and $EAI_CONFIG
    issues = check_config(config_path)
    if issues:
        raise ConfigError(issues)
    click.echo("ok")


@click.command()
def schema() -> None:
    """Print the JSON Schema of routes.yaml (for editors)."""
    click.echo(json.dumps(config_json_schema(), indent=2))
