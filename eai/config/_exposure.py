"""Refuses network listeners open to anyone: outside loopback, TLS, credentials or networks.

Touches: nothing.

Runs on plain data (raw YAML or a dumped model) like the other cross checks,
reading each listener's keys by name, so a listener model only has to carry
them: ``bind``, ``tls``, ``allowed_networks``, ``insecure`` and, for HTTP,
``api_keys`` and ``allowed_subjects``. One rule per listener type:

- ``mllp`` (HL7 v2): ``tls`` or ``allowed_networks``;
- ``http`` (CDA intake): a way to tell who sends: ``api_keys``, ``oauth2``,
  ``allowed_subjects`` or required client certificates (``tls.client_ca`` with
  ``require_client_cert``), or ``allowed_networks``; and bearer credentials
  (``api_keys``, ``oauth2``) only over ``tls`` (a bearer sent in clear can be
  replayed by anyone on the path).

``insecure: true`` on the listener says it is meant (a closed network, a
TLS-terminating proxy on the same host) and silences the rule. A loopback
bind (127.0.0.0/8, ::1, localhost) is always accepted.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from typing import Any

from eai.config._yaml import Loc

__all__ = ["exposure_problems", "is_loopback"]

_OVERRIDE = "or write insecure: true on the listener if this is meant"


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


def _mllp(listener: Mapping[str, Any]) -> tuple[str, str] | None:
    if listener.get("tls") or listener.get("allowed_networks"):
        return None
    return (
        "bind",
        f"listens on {listener['bind']} without tls or allowed_networks: anyone who can "
        f"reach the port can send HL7 messages; add one, {_OVERRIDE}",
    )


def _http(listener: Mapping[str, Any]) -> tuple[str, str] | None:
    tls = listener.get("tls")
    client_certs = (
        isinstance(tls, Mapping)
        and bool(tls.get("client_ca"))
        and bool(tls.get("require_client_cert"))
    )
    for bearer in ("api_keys", "oauth2"):
        if listener.get(bearer) and not tls:
            return (
                bearer,
                f"bearer credentials on {listener['bind']} without tls would cross the network "
                f"in clear; add tls, {_OVERRIDE}",
            )
    if (
        listener.get("api_keys")
        or listener.get("oauth2")
        or listener.get("allowed_subjects")
        or client_certs
        or listener.get("allowed_networks")
    ):
        return None
    return (
        "bind",
        f"listens on {listener['bind']} and accepts documents from anyone: set api_keys, "
        "oauth2, allowed_subjects (or tls.require_client_cert), or allowed_networks, "
        f"{_OVERRIDE}",
    )


_RULES: dict[str, Callable[[Mapping[str, Any]], tuple[str, str] | None]] = {
    "mllp": _mllp,
    "http": _http,
}


def exposure_problems(data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """One problem per exposed listener, located at the key to change."""
    problems: list[tuple[Loc, str]] = []
    listeners = data.get("listeners")
    for index, listener in enumerate(listeners if isinstance(listeners, list | tuple) else ()):
        if not isinstance(listener, Mapping):
            continue
        rule = _RULES.get(str(listener.get("type")))
        bind = listener.get("bind")
        if rule is None or not isinstance(bind, str) or listener.get("insecure") is True:
            continue
        if is_loopback(bind):
            continue
        found = rule(listener)
        if found is not None:
            key, message = found
            problems.append((("listeners", index, key), message))
    return problems
