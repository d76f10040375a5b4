"""Who may hold a listener's connections: address allow-list, per-peer cap, eviction of unknowns.

Touches: nothing (bookkeeping only; the listener closes the sockets it is told to close).

Shared by the MLLP listener and the DICOM acceptor (the HTTP listener uses the
allow-list and :class:`LogThrottle` only). A new connection is checked
at accept, before a byte is read from it:

1. its source address must be in ``allowed_networks`` (empty: any address);
2. its address may hold at most ``max_per_peer`` connections at once;
3. when the listener holds ``capacity`` connections, the oldest *unknown* one
   (still in its first exchange: no complete frame from an allowed sender yet)
   that the listener says may go is evicted to make room; when every
   connection is known, the new one is refused.

Known connections are never evicted: once a connection has delivered a frame
the listener accepted (MLLP: a message journaled from an allowed MSH-4; DICOM:
an A-ASSOCIATE-RQ that passed the AE title and address checks), a flood of new
connections cannot take its place. Refusals are counted (:attr:`Admission.counts`)
and logged at WARNING with the listener and the address, once a minute per
address and reason (then at DEBUG, so a flood cannot flood the log), on the
listener's logger when it passes one.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = [
    "Admission",
    "Decision",
    "IpNetwork",
    "LogThrottle",
    "address_allowed",
    "check_networks",
    "parse_networks",
]

log = logging.getLogger(__name__)

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
C = TypeVar("C", bound=Hashable)

_WARN_EVERY = 60.0
"""Seconds between two WARNINGs for the same address and reason."""
_WARNED_MAX = 4096
"""Addresses remembered for the rate limit of warnings (forgotten all at once past it)."""


def parse_networks(values: Iterable[str]) -> tuple[IpNetwork, ...]:
    """``["10.1.2.0/24", "10.9.9.9", "::1"]`` -> networks; ValueError naming a bad entry."""
    out: list[IpNetwork] = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"{value!r} is not an IP address or network in CIDR notation "
                "(e.g. 10.1.2.0/24; host names are not resolved)"
            ) from None
    return tuple(out)


def check_networks(values: tuple[str, ...]) -> tuple[str, ...]:
    """Pydantic validator body for ``allowed_networks``: each entry must parse."""
    parse_networks(values)
    return values


def address_allowed(networks: tuple[IpNetwork, ...], host: str) -> bool:
    """True when ``networks`` is empty or holds ``host`` (an IPv4-mapped IPv6 counts as IPv4)."""
    if not networks:
        return True
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in networks)


class LogThrottle:
    """Says at which level to log a repeated complaint: WARNING the first time for a key
    and then once every ``every`` seconds, DEBUG in between; thread-safe.

    At most ``remember`` keys are kept (all forgotten at once past it), so a flood of
    new addresses cannot grow it without bound."""

    def __init__(
        self,
        every: float = _WARN_EVERY,
        remember: int = _WARNED_MAX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._every = every
        self._remember = remember
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[Hashable, float] = {}

    def level(self, key: Hashable) -> int:
        """``logging.WARNING`` when ``key`` was not reported in the last ``every`` s, else DEBUG."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._every:
                return logging.DEBUG
            if len(self._last) >= self._remember:
                self._last.clear()
            self._last[key] = now
            return logging.WARNING


@dataclass(slots=True)
class _Entry:
    host: str
    opened: float
    known: bool = False


@dataclass(frozen=True, slots=True)
class Decision(Generic[C]):
    """The answer to :meth:`Admission.admit`: ``refused`` (a reason) or admitted, with
    ``evicted`` the connection the listener must now close (None: nobody)."""

    refused: str | None
    evicted: C | None = None

    @property
    def admitted(self) -> bool:
        return self.refused is None


class Admission(Generic[C]):
    """The connections of one listener, by address; thread-safe."""

    def __init__(
        self,
        *,
        listener: str,
        networks: tuple[IpNetwork, ...],
        max_per_peer: int,
        capacity: int,
        count_known: bool = True,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger = log,
    ) -> None:
        """``capacity`` bounds all connections (``count_known``) or only the unknown ones;
        refusals and evictions are logged on ``logger`` (the listener's own)."""
        self.listener = listener
        self.networks = networks
        self.max_per_peer = max_per_peer
        self.capacity = capacity
        self._count_known = count_known
        self._clock = clock
        self._log = logger
        self._throttle = LogThrottle(clock=clock)
        self._lock = threading.Lock()
        self._entries: dict[C, _Entry] = {}
        self._per_host: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()
        """``refused_network``, ``refused_per_peer``, ``refused_full``, ``evicted``."""

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def admit(
        self, conn: C, host: str, may_evict: Callable[[C], bool] = lambda _: True
    ) -> Decision[C]:
        """Checks a new connection from ``host``; when admitted, it is tracked until
        :meth:`release`. ``may_evict`` says whether an unknown connection may go now
        (e.g. not while its message is being journaled)."""
        if not address_allowed(self.networks, host):
            return self._refuse("network", host, "address not in allowed_networks")
        with self._lock:
            if self._per_host[host] >= self.max_per_peer:
                reason = f"{self.max_per_peer} connections already open from this address"
                refusal = "per_peer"
            elif self._used() >= self.capacity:
                victim = self._oldest_unknown(may_evict)
                if victim is None:
                    reason = f"{self.capacity} connections open, all known"
                    refusal = "full"
                else:
                    self._drop(victim)
                    self._add(conn, host)
                    self.counts["evicted"] += 1
                    return Decision(None, victim)
            else:
                self._add(conn, host)
                return Decision(None)
        return self._refuse(refusal, host, reason)

    def mark_known(self, conn: C) -> None:
        """``conn`` delivered a frame the listener accepted: never evicted from now on."""
        with self._lock:
            entry = self._entries.get(conn)
            if entry is not None:
                entry.known = True

    def is_known(self, conn: C) -> bool:
        with self._lock:
            entry = self._entries.get(conn)
            return entry is not None and entry.known

    def release(self, conn: C) -> None:
        """``conn`` is closed (idempotent)."""
        with self._lock:
            self._drop(conn)

    def peers(self, host: str) -> int:
        """Connections held now by ``host``."""
        with self._lock:
            return self._per_host[host]

    # -- under the lock ----------------------------------------------------

    def _used(self) -> int:
        if self._count_known:
            return len(self._entries)
        return sum(1 for e in self._entries.values() if not e.known)

    def _oldest_unknown(self, may_evict: Callable[[C], bool]) -> C | None:
        best: C | None = None
        best_opened = 0.0
        for conn, entry in self._entries.items():
            if entry.known or (best is not None and entry.opened >= best_opened):
                continue
            if may_evict(conn):
                best, best_opened = conn, entry.opened
        return best

    def _add(self, conn: C, host: str) -> None:
        self._entries[conn] = _Entry(host, self._clock())
        self._per_host[host] += 1

    def _drop(self, conn: C) -> None:
        entry = self._entries.pop(conn, None)
        if entry is None:
            return
        self._per_host[entry.host] -= 1
        if self._per_host[entry.host] <= 0:
            del self._per_host[entry.host]

    # -- refusals ----------------------------------------------------------

    def _refuse(self, kind: str, host: str, reason: str) -> Decision[C]:
        with self._lock:
            self.counts[f"refused_{kind}"] += 1
        self.report(kind, host, f"connection from {host} refused: {reason}")
        return Decision(reason)

    def report(self, kind: str, host: str, text: str) -> None:
        """Logs ``listener <name>: <text>`` at WARNING, or at DEBUG when the same
        ``kind`` was reported for ``host`` less than a minute ago (a flood of
        connections cannot flood the log)."""
        self._log.log(self._throttle.level((kind, host)), "listener %s: %s", self.listener, text)
