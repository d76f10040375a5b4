"""``eai check``'s exposure rule for ``mllp`` listeners: outside loopback, TLS or networks.

Touches: nothing (importing it registers the check with :mod:`eai.registry`).

An MLLP listener bound outside loopback needs ``tls`` or ``allowed_networks``
(or ``insecure: true``, :mod:`eai.config`'s shared part of the rule).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eai.config import INSECURE_HINT, exposure_check
from eai.registry import CheckSpec, register_check

__all__ = ["mllp_exposure"]


def mllp_exposure(listener: Mapping[str, Any]) -> tuple[str, str] | None:
    """None when the listener says who may connect; else the key to change and why."""
    if listener.get("tls") or listener.get("allowed_networks"):
        return None
    return (
        "bind",
        f"listens on {listener['bind']} without tls or allowed_networks: anyone who can "
        f"reach the port can send HL7 messages; add one, {INSECURE_HINT}",
    )


register_check(
    CheckSpec(
        name="mllp-exposure",
        run=exposure_check("mllp", mllp_exposure),
        summary="mllp listeners outside loopback need tls or allowed_networks",
    )
)
