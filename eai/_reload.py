"""What a reload of routes.yaml changes in a running engine, and what needs a restart.

Touches: files (the charter and mapping files a new config names, read to validate it).

A reload applies routes, mappings (``map:`` on routes), the identity charter, contacts and
SMTP server, and destinations: the engine swaps its current config (the pipeline reads it
per batch), starts the delivery workers of new destinations, rebuilds changed ones (the old
worker finishes its batch first) and stops removed ones. Some settings are bound to what
the process already holds; a reload keeps their old values and says so:

- ``engine`` (data_dir, database, admin socket, node id, batches, lease): the journal,
  its lock and the sockets are open;
- ``listeners`` (binds, TLS, allow-lists, limits): their sockets are open and their
  connections must not drop;
- ``identity.server``: its client holds connections and a cache.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from eai.config import Config, DestinationConfig, load_config_text
from eai.errors import ConfigError, ConfigIssue, EaiError
from eai.identity_gate import reload_charter

__all__ = [
    "RESTART_ONLY",
    "ReloadPlan",
    "ReloadRefused",
    "config_hash",
    "plan_reload",
    "read_new_config",
    "unreadable",
]

RESTART_ONLY = ("engine", "listeners", "identity.server", "metrics")
"""The parts of routes.yaml a reload keeps (a restart applies them)."""


class ReloadRefused(EaiError):
    """A reload that could not be applied (the engine is starting, a destination cannot be
    built...): the running config stays."""


def config_hash(text: bytes) -> str:
    """The SHA-256 of the file as read (recorded with the reload)."""
    return hashlib.sha256(text).hexdigest()


@dataclass(frozen=True)
class ReloadPlan:
    """The config to run now and how it differs from the running one."""

    config: Config
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    restart_needed: tuple[str, ...]
    routes: int

    def rebuilt(self) -> dict[str, DestinationConfig]:
        """The destinations a worker is started for (added and changed), by name."""
        by_name = {d.name: d for d in self.config.destinations}
        return {n: by_name[n] for n in (*self.added, *self.changed)}

    def summary(self) -> str:
        parts = [f"{self.routes} route(s)"]
        for label, names in (("added", self.added), ("changed", self.changed)):
            if names:
                parts.append(f"destinations {label}: {', '.join(names)}")
        if self.removed:
            parts.append(f"destinations removed: {', '.join(self.removed)}")
        if self.restart_needed:
            parts.append(f"kept until restart: {', '.join(self.restart_needed)}")
        return "; ".join(parts)


def _engine_changes(old: Config, new: Config) -> list[str]:
    return [
        f"engine.{name}"
        for name in type(old.engine).model_fields
        if getattr(old.engine, name) != getattr(new.engine, name)
    ]


def _listener_changes(old: Config, new: Config) -> list[str]:
    before = {lst.name: lst for lst in old.listeners}
    after = {lst.name: lst for lst in new.listeners}
    return [
        f"listener {name}"
        for name in sorted(before.keys() | after.keys())
        if before.get(name) != after.get(name)
    ]


def plan_reload(old: Config, new: Config) -> ReloadPlan:
    """The config to apply (``new`` with the restart-only parts of ``old``) and the
    destination changes; ``restart_needed`` names what ``new`` changes that is kept."""
    restart = _engine_changes(old, new) + _listener_changes(old, new)
    if old.identity.server != new.identity.server:
        restart.append("identity.server")
    if old.metrics != new.metrics:
        restart.append("metrics")
    if old.audit != new.audit:
        restart.append("audit")  # the purge job and the SIEM forwarder start with the engine
    identity = new.identity.model_copy(update={"server": old.identity.server})
    applied = new.model_copy(
        update={
            "engine": old.engine,
            "listeners": old.listeners,
            "identity": identity,
            "metrics": old.metrics,
            "audit": old.audit,
        }
    )
    before = {d.name: d for d in old.destinations}
    after = {d.name: d for d in new.destinations}
    return ReloadPlan(
        config=applied,
        added=tuple(n for n in after if n not in before),
        removed=tuple(n for n in before if n not in after),
        changed=tuple(n for n in after if n in before and before[n] != after[n]),
        restart_needed=tuple(restart),
        routes=len(new.routes),
    )


def unreadable(path: Path, exc: Exception) -> ConfigIssue:
    """The issue of a config file that cannot be read or decoded."""
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return ConfigIssue(str(path), 1, 1, f"cannot read the file: {reason}")


def read_new_config(text: bytes, filename: str) -> Config:
    """The new config from the file's bytes, its charter and mapping files read again
    (ConfigError listing the issues, and the rules and mappings in use kept, if not)."""
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([unreadable(Path(filename), exc)]) from exc
    config = load_config_text(decoded, filename)
    reload_charter(tuple(config.identity.charter))
    _reread_mappings(config)
    return config


def _reread_mappings(config: Config) -> None:
    """Reads again the mapping files the routes name (ConfigError when one is broken),
    then forgets the compiled ones and the ``map: auto`` choices (``default_for``), so the
    pipeline uses the files as they are now (edited, added or removed)."""
    named = {r.map_ for r in config.routes if r.map_}
    if not named:
        return
    import mappings  # lazy, as in the pipeline: only configs that map load it

    named.discard(mappings.AUTO)
    for name in sorted(named):
        mappings.load_mapping.__wrapped__(name)  # the file itself, not the cached compile
    mappings.clear_caches()
