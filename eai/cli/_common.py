"""Shared pieces of the CLI: loading the config, opening the journal, parsing times.

Touches: files (config), DB (opens the journal).

Imported by ``eai --help`` and by every command, so it imports nothing heavy itself:
the config models, the journal (SQLAlchemy) and the TLS helpers are imported by the
functions that need them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from click.core import ParameterSource

from eai.errors import ConfigNotFound

if TYPE_CHECKING:
    import ssl

    from eai.config import Config, EngineConfig
    from eai.store import Store

__all__ = [
    "CONFIG_OPTION",
    "emit_json",
    "journal_at",
    "open_journal",
    "open_store",
    "parse_time",
    "require_config",
    "read_config",
    "tls_client_context",
    "tls_client_options",
]

_F = TypeVar("_F", bound=Callable[..., None])

CONFIG_OPTION = click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    envvar="EAI_CONFIG",
    default="routes.yaml",
    show_default="routes.yaml",
    help="routes.yaml to use (or $EAI_CONFIG)",
)


def require_config(path: Path) -> Path:
    """``path`` if it exists; else :class:`ConfigNotFound` (exit 2) saying where the
    command looked (``-c``, ``$EAI_CONFIG`` or the current directory) and how to name
    the file."""
    if path.exists():
        return path
    ctx = click.get_current_context(silent=True)
    source = None
    if ctx is not None and ctx.params.get("config_path") == path:
        source = ctx.get_parameter_source("config_path")
    if source is ParameterSource.ENVIRONMENT:
        text = (
            f"$EAI_CONFIG names {path}, which does not exist: set it to your routes.yaml, "
            "or name the file with -c FILE"
        )
    elif source is ParameterSource.COMMANDLINE:
        text = f"-c {path}: no such file: name your routes.yaml with -c FILE or $EAI_CONFIG"
    elif source is not None:
        text = (
            f"no {path} in {Path.cwd()}: run eai where routes.yaml is, or name it with "
            "-c FILE or $EAI_CONFIG"
        )
    else:
        text = f"{path}: no such file: name your routes.yaml with -c FILE or $EAI_CONFIG"
    raise ConfigNotFound(text)


def read_config(path: Path) -> Config:
    """The whole routes.yaml, validated with every plugin's models (imports them)."""
    from eai.config import load_config

    return load_config(require_config(path))


def open_store(config: Config) -> Store:
    return _store(config.engine)


def journal_at(path: Path) -> tuple[str, Path]:
    """The journal (database URL, data_dir) of routes.yaml at ``path``, read from its
    ``engine`` section alone: for the commands that only read or write the journal, which
    then import no plugin and work even while another part of the file is being fixed. A
    plain section (``database`` and ``data_dir`` only) is read with YAML alone
    (:func:`eai.config.journal_location`: no pydantic, no model); any other is validated
    (:func:`eai.config.load_engine_config`), its mistakes reported at ``FILE:LINE:COL``."""
    from eai.config import journal_location

    path = require_config(path)
    try:
        where = journal_location(path)
    except (OSError, UnicodeDecodeError):
        where = None  # load_engine_config says why the file cannot be read
    if where is not None:
        return where.database, where.data_dir
    from eai.config import load_engine_config

    engine = load_engine_config(path)
    return engine.database, Path(engine.data_dir)


def open_journal(path: Path) -> Store:
    """The journal of routes.yaml at ``path`` (see :func:`journal_at`)."""
    database, data_dir = journal_at(path)
    return _store_at(database, data_dir)


def _store(engine: EngineConfig) -> Store:
    return _store_at(engine.database, Path(engine.data_dir))


def _store_at(database: str, data_dir: Path) -> Store:
    from eai.store import Store

    return Store(database, data_dir, os.environ.get("EAI_KEY"))


_RELATIVE = re.compile(r"^(\d+)\s*(s|m|h|d)$")


def parse_time(value: str | None) -> datetime | None:
    """``2h``, ``30m``, ``1d`` (that long ago) or an ISO date/time (UTC if no zone)."""
    if value is None:
        return None
    m = _RELATIVE.match(value.strip())
    if m:
        n, unit = int(m.group(1)), m.group(2)
        delta = {
            "s": timedelta(seconds=n),
            "m": timedelta(minutes=n),
            "h": timedelta(hours=n),
            "d": timedelta(days=n),
        }[unit]
        return datetime.now(UTC).replace(tzinfo=None) - delta  # naive UTC, as the journal
    try:
        dt = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise click.BadParameter(
            f"{value!r}: use an ISO date/time (2026-11-23T10:00) or a duration ago (2h, 30m, 1d)"
        ) from exc
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


def tls_client_options(command: _F) -> _F:
    """``--tls``, ``--ca``, ``--cert``, ``--key``: the test clients' TLS options
    (``eai send`` for MLLP, ``eai dicom echo|send``); see :func:`tls_client_context`."""
    options = [
        click.option("--tls", is_flag=True, help="use TLS, server checked against system CAs"),
        click.option(
            "--ca",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="CA bundle (PEM) to verify the server; implies --tls",
        ),
        click.option(
            "--cert",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="client certificate (PEM), for peers that require one; implies --tls",
        ),
        click.option(
            "--key",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="private key of --cert (PEM), when not in the certificate file",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def tls_client_context(
    tls: bool, ca: Path | None, cert: Path | None, key: Path | None
) -> ssl.SSLContext | None:
    """The client TLS context of :func:`tls_client_options` (TLS >= 1.2, server verified,
    as the engine's destinations make it), or None for plain TCP."""
    if key is not None and cert is None:
        raise click.BadParameter("--key needs --cert", param_hint="--key")
    if not (tls or ca or cert):
        return None
    from eai.config import TlsClientConfig
    from eai.net import client_context

    return client_context(TlsClientConfig(ca=ca, cert=cert, key=key))
