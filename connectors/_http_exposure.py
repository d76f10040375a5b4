"""``eai check``'s exposure rule for ``http`` listeners: who sends, and bearers only over TLS.

Touches: nothing (importing it registers the check with :mod:`eai.registry`).

An HTTP intake bound outside loopback needs a way to tell who sends: ``api_keys``,
``oauth2``, ``allowed_subjects`` or required client certificates (``tls.client_ca``
with ``require_client_cert``), or ``allowed_networks``; and bearer credentials
(``api_keys``, ``oauth2``) only over ``tls`` (a bearer sent in clear can be
replayed by anyone on the path). ``insecure: true`` silences it (:mod:`eai.config`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eai.config import INSECURE_HINT, exposure_check
from eai.registry import CheckSpec, register_check

__all__ = ["http_exposure"]


def http_exposure(listener: Mapping[str, Any]) -> tuple[str, str] | None:
    """None when the listener can tell who sends (safely); else the key to change and why."""
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
                f"in clear; add tls, {INSECURE_HINT}",
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
        f"{INSECURE_HINT}",
    )


register_check(
    CheckSpec(
        name="http-exposure",
        run=exposure_check("http", http_exposure),
        summary="http listeners outside loopback must tell who sends; bearers only over tls",
    )
)
