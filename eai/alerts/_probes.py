"""What each alert rule measures, one probe per rule name (a registry).

Touches: DB (indexed reads through :mod:`eai.store`), files (/proc/net/tcp*, disk usage,
PEM certificates). Blocking: the engine runs the whole evaluation on a worker thread.

A probe returns one :class:`Observation` per scope it watches. The journal's measures
(destinations, rejects) are the same on every node; the others are this node's (its
listeners, its disks, its identity-server client, its TLS handshakes) and carry the node
in their scope on PostgreSQL (``listener:adt@node-2``) so that each node keeps its own.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from eai.alerts._certs import ExpiryCache, cert_files
from eai.alerts._machine import Observation, duration_fr
from eai.alerts._signals import Signals
from eai.config import AlertRule, Config
from eai.store import destination_health, rejected_by_facility, sqlite_file

__all__ = ["PROBES", "ProbeContext", "listening_ports"]


@dataclass(frozen=True)
class ProbeContext:
    config: Config
    engine: Engine
    node: str
    local: str  # "" (SQLite: one node) or "@<node>"
    listener_ports: Mapping[str, int | None]  # this node's network listeners
    signals: Signals
    identity_down: Callable[[], bool]
    certs: ExpiryCache
    facilities: Callable[[str], tuple[str, ...]]  # scope -> its establishments
    now: datetime

    def obs(self, rule: Any, scope: str, bad: bool, value: str, local: bool = False) -> Observation:
        full = scope + (self.local if local else "")
        owner = self.node if local and self.local else ""
        return Observation(rule.rule, full, bad, value, self.facilities(scope), owner)


def _wanted(rule: Any, name: str) -> bool:
    return not rule.only or name in rule.only


def _destinations(rule: Any, ctx: ProbeContext) -> list[Observation]:
    names = [d.name for d in ctx.config.destinations if _wanted(rule, d.name)]
    window = getattr(rule, "window", 0.0)
    out: list[Observation] = []
    for h in destination_health(ctx.engine, names, ctx.now - timedelta(seconds=window)):
        scope = f"destination:{h.name}"
        waiting = f"{h.depth} message(s) en attente"
        if rule.rule == "destination_failing":
            known = [t for t in (h.last_success_at, h.oldest_at) if t is not None]
            start = max(known, default=None)
            failing = 0.0 if start is None or not h.depth else (ctx.now - start).total_seconds()
            bad = not h.paused and h.depth > 0 and failing >= rule.after
            if bad or h.last_success_at is None:
                value = f"{waiting} ; aucun envoi réussi depuis {duration_fr(failing)}"
            else:
                ago = (ctx.now - h.last_success_at).total_seconds()
                value = f"{waiting} ; dernier envoi réussi il y a {duration_fr(ago)}"
        elif rule.rule == "queue_age":
            age = 0.0 if h.oldest_at is None else (ctx.now - h.oldest_at).total_seconds()
            bad = not h.paused and age >= rule.max_age
            value = f"{waiting} ; le plus ancien attend depuis {duration_fr(age)}"
        else:
            bad = h.dead_recent >= rule.min
            value = f"{h.dead_recent} envoi(s) abandonné(s) en {duration_fr(rule.window)}"
        out.append(ctx.obs(rule, scope, bad, value))
    return out


def _rejected(rule: Any, ctx: ProbeContext) -> list[Observation]:
    counts = rejected_by_facility(ctx.engine, ctx.now - timedelta(seconds=rule.window))
    return [
        ctx.obs(
            rule,
            f"establishment:{facility}",
            n >= rule.max,
            f"{n} message(s) rejeté(s) en {duration_fr(rule.window)}",
        )
        for facility, n in sorted(counts.items())
        if _wanted(rule, facility)
    ]


def listening_ports() -> set[int] | None:
    """The TCP ports in LISTEN state on this host (Linux /proc); None when unknown."""
    ports: set[int] = set()
    found = False
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        found = True
        for line in lines:
            cols = line.split()
            if len(cols) > 3 and cols[3] == "0A":
                ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports if found else None


def _listeners(rule: Any, ctx: ProbeContext) -> list[Observation]:
    listening = listening_ports()
    if listening is None:
        return []
    out = []
    for name, port in ctx.listener_ports.items():
        if not _wanted(rule, name):
            continue
        bad = port is None or port not in listening
        value = f"port {port} : n'écoute pas" if bad else f"port {port} : à l'écoute"
        out.append(ctx.obs(rule, f"listener:{name}", bad, value, local=True))
    return out


def _journal(rule: Any, ctx: ProbeContext) -> list[Observation]:
    n, ago = ctx.signals.journal_failures(rule.window)
    value = (
        f"{n} message(s) refusé(s) en {duration_fr(rule.window)} : le journal n'a pas pu les écrire"
    )
    if ago is not None and n:
        value += f" (dernier il y a {duration_fr(ago)})"
    return [ctx.obs(rule, "engine:journal", n > 0, value, local=True)]


def _disks(ctx: ProbeContext) -> dict[str, Path]:
    paths = {"engine:data_dir": Path(ctx.config.engine.data_dir)}
    db = sqlite_file(ctx.config.engine.database)
    if db is not None:
        paths["engine:database"] = db.parent
    for lcfg in ctx.config.listeners:
        spool = getattr(lcfg, "spool_dir", None)
        if isinstance(spool, Path):
            paths[f"listener:{lcfg.name}"] = spool
    return paths


def _disk(rule: Any, ctx: ProbeContext) -> list[Observation]:
    out = []
    seen: set[tuple[int, int]] = set()
    for scope, path in _disks(ctx).items():
        try:
            usage = shutil.disk_usage(path)
            dev = (path.stat().st_dev, 0)
        except OSError:
            continue
        if dev in seen or not _wanted(rule, scope.partition(":")[2]):
            continue
        seen.add(dev)
        percent = 100.0 * usage.used / usage.total if usage.total else 0.0
        value = f"{path} : {percent:.0f} % utilisés (seuil {rule.max_percent:g} %)"
        out.append(ctx.obs(rule, scope, percent >= rule.max_percent, value, local=True))
    return out


def _identity(rule: Any, ctx: ProbeContext) -> list[Observation]:
    if ctx.config.identity.server is None:
        return []
    down = ctx.identity_down()
    value = (
        "le serveur ne répond pas : les envois qui exigent une identité qualifiée (DMP, "
        "MSSanté…) sont mis en attente et seront transmis dès qu'il répondra"
        if down
        else "le serveur répond de nouveau : les envois mis en attente sont rapprochés et transmis"
    )
    return [ctx.obs(rule, "engine:identity_server", down, value, local=True)]


def _certs(rule: Any, ctx: ProbeContext) -> list[Observation]:
    soonest: dict[str, tuple[datetime, str]] = {}
    for cf in cert_files(ctx.config):
        if not _wanted(rule, cf.scope.partition(":")[2]):
            continue
        at = ctx.certs.expiry(cf.path)
        if at is not None and (cf.scope not in soonest or at < soonest[cf.scope][0]):
            soonest[cf.scope] = (at, f"{cf.field} ({cf.path.name})")
    out = []
    for scope, (at, what) in sorted(soonest.items()):
        left = (at - ctx.now).total_seconds()
        when = "a expiré" if left <= 0 else f"expire dans {duration_fr(left)}"
        value = f"certificat {what} : {when}, le {at:%d/%m/%Y à %H:%M} UTC"
        out.append(ctx.obs(rule, scope, left <= rule.within, value))
    return out


def _peer_certs(rule: Any, ctx: ProbeContext) -> list[Observation]:
    rejected = ctx.signals.tls_rejections(rule.window)
    scopes = [f"listener:{n}" for n in ctx.listener_ports]
    scopes += [f"destination:{d.name}" for d in ctx.config.destinations]
    out = []
    for scope in scopes:
        if not _wanted(rule, scope.partition(":")[2]):
            continue
        n, _ = rejected.get(scope, (0, None))
        value = (
            f"{n} connexion(s) TLS refusée(s) (certificat du correspondant non reconnu) "
            f"en {duration_fr(rule.window)}"
        )
        out.append(ctx.obs(rule, scope, n > 0, value, local=True))
    return out


PROBES: dict[str, Callable[[AlertRule, ProbeContext], list[Observation]]] = {
    "destination_failing": _destinations,
    "queue_age": _destinations,
    "dead_letters": _destinations,
    "rejected_rate": _rejected,
    "listener_down": _listeners,
    "journal_failing": _journal,
    "disk_usage": _disk,
    "identity_server": _identity,
    "cert_expiry": _certs,
    "peer_cert_rejected": _peer_certs,
}
