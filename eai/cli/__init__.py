"""The ``eai`` command line: run the engine, check config, inspect and replay flows.

Touches: whatever its commands touch (see each module).

Errors the engine raises on purpose (:class:`eai.errors.EaiError`) print one
line per problem on stderr and exit with the class's code; tracebacks only
with ``--debug``.

Every subcommand is imported only when it runs or shows its help: ``eai --help`` lists
the core's from :data:`COMMANDS` and the plugins' (``eai dicom``, ``eai send``, ``eai
identity standin``: :func:`eai.registry.commands`) from their summaries, so that
``import eai.cli`` loads click and nothing heavy (no SQLAlchemy, pydantic, pydicom).
The helpers a plugin's commands share with the core's (config option, store, TLS
client options, JSON output) are exported here. Exit codes: :data:`eai.errors.EXIT_CODES`.
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
from eai.cli._lazy import LazyGroup
from eai.errors import EXIT_CODES, ConfigError, EaiError

__all__ = [
    "COMMANDS",
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

COMMANDS: dict[str, tuple[str, str]] = {
    "run": (
        "eai.cli._engine_cmds:run",
        "Run the engine in the foreground (SIGTERM/SIGINT: stop cleanly, exit 0; SIGHUP or "
        "eai reload: re-read routes.yaml).",
    ),
    "check": (
        "eai.cli._engine_cmds:check",
        "Validate routes.yaml (FILE, else -c): prints FILE:LINE:COLUMN: problem for each "
        "error, or ok.",
    ),
    "schema": (
        "eai.cli._engine_cmds:schema",
        "Print the JSON Schema of routes.yaml (for editors).",
    ),
    "reload": (
        "eai.cli._reload_cmd:reload_cmd",
        "Make the running engine re-read routes.yaml (as SIGHUP does); an invalid file is "
        "refused with FILE:LINE:COLUMN lines and the running config stays.",
    ),
    "messages": ("eai.cli._support_cmds:messages", "Find and inspect journaled messages."),
    "events": (
        "eai.cli._events_cmds:events",
        "Engine-wide events (of no message): each reload of routes.yaml, applied or refused.",
    ),
    "replay": (
        "eai.cli._support_cmds:replay",
        "Run journaled messages through today's routes.yaml again.",
    ),
    "resend": ("eai.cli._support_cmds:resend_cmd", "Send deliveries again, exactly as they were."),
    "queue": ("eai.cli._support_cmds:queue", "Outbox queues per destination."),
    "identity": (
        "eai.cli._identity_cmds:identity",
        "Patient identity: INS checks, charter anomalies, held deliveries.",
    ),
    "convert": (
        "eai.cli._mapping_cmds:convert",
        "Print the FHIR Bundle a route with `map:` would deliver for FILE.",
    ),
    "alerts": (
        "eai.cli._alerts_cmds:alerts",
        "Technical alerts: states, mails, silences.",
    ),
    "mapping": (
        "eai.cli._mapping_cmds:mapping",
        "Mapping files (mappings/*.yaml): list them, run their tests.",
    ),
    "audit": (
        "eai.cli._audit_cmds:audit",
        "The audit trail: who read or changed what, chained against tampering.",
    ),
    "users": (
        "eai.cli._users_cmds:users",
        "Web console accounts: viewer (no payloads), operator (actions, payloads with a "
        "reason), admin (audit trail).",
    ),
}
"""The core's subcommands: name -> (``module:attribute`` of the click command, its line in
``eai --help``: the first paragraph of its help, which a test holds equal). A command's
module is imported only when it runs or shows its help (:class:`~eai.cli._lazy.LazyGroup`);
plugins declare theirs in :data:`eai.plugins.COMMANDS`."""

_EPILOG = "\b\nExit codes:\n" + "\n".join(
    f"  {int(code)}  {meaning}" for code, meaning in EXIT_CODES.items()
)


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    epilog=_EPILOG,
    context_settings={"help_option_names": ["-h", "--help"]},
)
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
