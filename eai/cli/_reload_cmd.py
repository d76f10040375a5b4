"""``eai reload``: asks the running engine to read routes.yaml again.

Touches: files (the config, the data dir's lock file), network (the admin Unix socket),
signals (SIGHUP to the engine when its admin socket does not answer).

Through the admin socket the engine knows who asked (``SO_PEERCRED``), journals it, and
answers: the change applied, or the FILE:LINE:COL lines of an invalid file (the running
config stays). When no admin socket answers, the engine holding the data dir's lock is
sent SIGHUP; its log then says what happened.
"""

from __future__ import annotations

import fcntl
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from eai.cli._common import CONFIG_OPTION, require_config
from eai.errors import ConfigError, Unavailable

if TYPE_CHECKING:
    from eai.config import EngineConfig

__all__ = ["reload_cmd"]

RELOAD_TIMEOUT = 300.0
"""A changed destination waits for its worker's batch (its sends' timeouts) before the
new one starts: the answer may take that long."""


class NoEngine(Unavailable):
    """No running engine to reload (exit 4)."""


def _engine_section(path: Path) -> tuple[EngineConfig, ConfigError | None]:
    """The engine section of ``path`` (where the engine's socket and lock are), and the
    file's issues if it is invalid: the engine is still asked, so that it records the
    refusal; an engine section that cannot be read itself raises the issues."""
    import yaml

    from eai.config import EngineConfig, load_config  # lazy: eai --help stays fast

    try:
        return load_config(path).engine, None
    except ConfigError as exc:
        issues = exc
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        section: Any = data.get("engine", {}) if isinstance(data, dict) else {}
        if "${" in repr(section):
            raise ValueError("variables")
        return EngineConfig.model_validate(section or {}), issues
    except (OSError, yaml.YAMLError, ValueError):
        raise issues from None


def _engine_pid(data_dir: Path) -> int:
    """The pid of the engine holding ``data_dir``'s lock (SQLite journals)."""
    lock = data_dir / "eai.lock"
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NoEngine(f"no engine is running on {data_dir} (no eai.lock)") from None
    with os.fdopen(fd) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            text = f.read().strip()
            if text.isdigit():
                return int(text)
            raise NoEngine(f"{lock} is held but names no pid") from None
    raise NoEngine(f"no engine is running on {data_dir} (eai.lock is free)")


@click.command("reload")
@CONFIG_OPTION
def reload_cmd(config_path: Path) -> None:
    """Make the running engine re-read routes.yaml (as SIGHUP does); an invalid file is
    refused with FILE:LINE:COLUMN lines and the running config stays.

    -c names the config whose engine section finds the engine (admin socket, data dir);
    the engine re-reads the file it was started with.

    Routes, mappings, the identity charter, contacts and SMTP, and destinations are
    applied; engine settings, listeners and identity.server need a restart."""
    from eai.admin import EngineNotRunning, request

    engine, issues = _engine_section(require_config(config_path))
    try:
        answer = request(engine.admin_socket_path(), {"op": "reload"}, timeout=RELOAD_TIMEOUT)
    except EngineNotRunning:
        if issues is not None:
            raise issues from None
        pid = _engine_pid(Path(engine.data_dir))
        os.kill(pid, signal.SIGHUP)
        click.echo(
            f"sent SIGHUP to the engine (pid {pid}); its admin socket did not answer, "
            "so the outcome is in its log"
        )
        return
    click.echo(
        f"reloaded {answer.get('file', config_path)} (sha256 {str(answer.get('sha256', ''))[:12]})"
    )
    click.echo(f"  {answer.get('summary', '')}")
    for item in answer.get("restart_needed") or ():
        click.echo(f"  warning: {item} changed: kept until the engine restarts", err=True)
