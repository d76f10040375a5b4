"""Shared pieces of the CLI: loading the config, opening the journal, parsing times.

Touches: files (config), DB (opens the journal).
"""

from __future__ import annotations

import json
import os
import re
import ssl
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click

from eai.config import Config, load_config
from eai.store import Store, utcnow

__all__ = [
    "CONFIG_OPTION",
    "emit_json",
    "open_store",
    "parse_time",
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
    default=lambda: os.environ.get("EAI_CONFIG", "routes.yaml"),
    show_default="routes.yaml",
    help="routes.yaml to use (or $EAI_CONFIG)",
)


def read_config(path: Path) -> Config:
    return load_config(path)


def open_store(config: Config) -> Store:
    return Store(config.engine.database, Path(config.engine.data_dir), os.environ.get("EAI_KEY"))


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
        return utcnow() - delta
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
