"""Annotated config types every listener model shares: a ``bind`` address, a network list.

Touches: nothing (validation only).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from eai.net._admission import check_networks
from eai.net._bind import split_bind


def _check_bind(value: str) -> str:
    split_bind(value)
    return value


BindAddress = Annotated[str, AfterValidator(_check_bind)]
"""A ``host:port`` or ``[v6]:port`` setting, checked by :func:`split_bind`."""

NetworkList = Annotated[tuple[str, ...], AfterValidator(check_networks)]
"""An ``allowed_networks`` setting: addresses or CIDR networks, checked by
:func:`check_networks`."""
