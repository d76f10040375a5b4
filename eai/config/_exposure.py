"""Refuses network listeners open to anyone: the shared part of each listener type's rule.

Touches: nothing.

A network listener's connector registers its rule as an ``eai check`` cross-check
(:func:`exposure_check` in a :class:`eai.registry.CheckSpec`; the MLLP and HTTP
listeners do). It runs on plain data (raw YAML or a dumped model) like the other
cross checks, reading the listener's keys by name: ``bind`` and ``insecure``
here, the rest (``tls``, ``allowed_networks``, credentials) in the rule.

``insecure: true`` on the listener says it is meant (a closed network, a
TLS-terminating proxy on the same host) and silences the rule. A loopback
bind (127.0.0.0/8, ::1, localhost) is always accepted.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Mapping
from typing import Any

from eai.config._raw import listed
from eai.config._yaml import Loc

__all__ = ["INSECURE_HINT", "ExposureCheck", "ExposureRule", "exposure_check", "is_loopback"]

INSECURE_HINT = "or write insecure: true on the listener if this is meant"
"""How a rule's message ends: the way to say an exposed listener is meant."""

ExposureRule = Callable[[Mapping[str, Any]], tuple[str, str] | None]
"""A listener type's rule: its entry (plain data, bound outside loopback, not
``insecure``) -> None when it is protected enough, else the key to change and why."""

ExposureCheck = Callable[[Mapping[str, Any]], list[tuple[Loc, str]]]


def is_loopback(bind: str) -> bool:
    """True when ``host:port`` binds a loopback address (a host name other than
    ``localhost`` is not resolved, so it counts as reachable from the network)."""
    host = bind.rpartition(":")[0].strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def exposure_check(listener_type: str, rule: ExposureRule) -> ExposureCheck:
    """The ``eai check`` cross-check (:class:`eai.registry.CheckSpec`'s ``run``) applying
    ``rule`` to every listener of ``listener_type`` reachable from the network: one problem
    per exposed listener, located at the key ``rule`` names."""
    return functools.partial(_exposure_problems, listener_type, rule)


def _exposure_problems(
    listener_type: str, rule: ExposureRule, data: Mapping[str, Any]
) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    for index, listener in enumerate(listed(data.get("listeners"))):
        if not isinstance(listener, Mapping) or listener.get("type") != listener_type:
            continue
        bind = listener.get("bind")
        if not isinstance(bind, str) or listener.get("insecure") is True:
            continue
        if is_loopback(bind):
            continue
        found = rule(listener)
        if found is not None:
            key, message = found
            problems.append((("listeners", index, key), message))
    return problems
