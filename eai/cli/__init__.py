"""The ``eai`` command line: run the engine, check config, inspect and replay flows.

Touches: whatever its commands touch (see each module).

Errors the engine raises on purpose (:class:`eai.errors.EaiError`) print one
line per problem on stderr and exit with the class's code; tracebacks only
with ``--debug``.

Plugins add subcommands (``eai dicom``, ``eai send``, ``eai identity standin``) through
:func:`eai.registry.commands` (:class:`~eai.cli._plugin_group.PluginGroup`): listed
by ``--help`` from their summaries, imported only when one runs. The helpers a
plugin's commands share with the core's (config option, store, TLS client options,
JSON output) are exported here.
"""

from __future__ import annotations

import logging
import sys

import click

from eai.cli._common import (
    CONFIG_OPTION,
    emit_json,
    open_store,
    parse_time,
    read_config,
    tls_client_context,
    tls_client_options,
)
from eai.cli._engine_cmds import check, run, schema
from eai.cli._identity_cmds import identity
from eai.cli._mapping_cmds import convert, mapping
from eai.cli._plugin_group import PluginGroup
from eai.cli._reload_cmd import reload_cmd
from eai.cli._support_cmds import messages, queue, replay, resend_cmd
from eai.errors import ConfigError, EaiError

__all__ = [
    "CONFIG_OPTION",
    "cli",
    "emit_json",
    "main",
    "open_store",
    "parse_time",
    "read_config",
    "tls_client_context",
    "tls_client_options",
]


@click.group(cls=PluginGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="show tracebacks and debug logs")
@click.version_option(package_name="eai")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """eai: the regional HL7 v2 / FHIR / DICOM interoperability engine."""
    ctx.obj = {"debug": debug}
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


for command in (run, check, schema, messages, replay, resend_cmd, queue):
    cli.add_command(command)
cli.add_command(identity)
cli.add_command(convert)
cli.add_command(mapping)
cli.add_command(reload_cmd)


def main(argv: list[str] | None = None) -> None:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="eai", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("eai: aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ConfigError as exc:
        if debug:
            raise
        for issue in exc.issues:
            click.echo(str(issue), err=True)
        sys.exit(exc.exit_code)
    except EaiError as exc:
        if debug:
            raise
        click.echo(f"eai: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.exit(130)
