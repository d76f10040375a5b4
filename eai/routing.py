"""Decides which routes, hence which destinations, take a message.

Touches: nothing.

The conditions were checked and compiled into probes when ``routes.yaml`` was
loaded (:mod:`eai.config`; each ``when`` key is a registered
:class:`eai.registry.ConditionSpec`, the core's or a plugin's): evaluating a route
is calling those probes, set lookups, string comparisons and precompiled regex
searches on the message (``field``) or on the routing facts its parser derived
(``fact``, e.g. the CI-SIS MetaDMPMSS flags). A message no route takes gets an
empty decision: the engine keeps it as ``filtered``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from eai.config import Route, When

__all__ = [
    "Routable",
    "RoutableHeader",
    "RouteDecision",
    "evaluate",
    "reads_facts",
    "when_matches",
]


class RoutableHeader(Protocol):
    """The MSH values routes look at (``eai.hl7.MessageHeader`` has them)."""

    @property
    def message_type(self) -> str:
        """MSH-9 as ``code^trigger`` (``ADT^A01``), or the bare code."""

    @property
    def sending_application(self) -> str:
        """MSH-3, first component."""

    @property
    def sending_facility(self) -> str:
        """MSH-4, first component."""


class Routable(Protocol):
    """A parsed message, as far as routing needs it."""

    @property
    def header(self) -> RoutableHeader:
        """Its MSH values."""

    def get(self, path: str) -> str:
        """The value at an HL7 path (``PV1-2``); the empty string when absent."""


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """Which routes took a message, and the destinations it goes to."""

    routes: tuple[str, ...]
    """Names of the matching routes, in config order."""
    destinations: tuple[str, ...]
    """Union of their ``to``, in first-seen order, without duplicates."""


_NO_FACTS: Mapping[str, str] = {}


def evaluate(
    routes: Sequence[Route],
    listener: str,
    message: Routable,
    facts: Mapping[str, str] = _NO_FACTS,
    *,
    facts_usable: bool = True,
) -> RouteDecision:
    """The routes from ``listener`` whose ``when`` holds for ``message`` and its ``facts``.

    ``facts_usable`` False (the document the facts describe was refused): a route whose
    ``when`` reads a fact anywhere, under ``not`` too, does not take the message; the
    sender's DESTDMP=Y does not send an unreadable document to the DMP.
    """
    names: list[str] = []
    destinations: dict[str, None] = {}
    for route in routes:
        if listener not in route.from_:
            continue
        if route.when is not None and not facts_usable and reads_facts(route.when):
            continue
        if route.when is not None and not route.when.matcher(message, facts):
            continue
        names.append(route.name)
        destinations.update(dict.fromkeys(route.to))
    return RouteDecision(tuple(names), tuple(destinations))


def when_matches(when: When, message: Routable, facts: Mapping[str, str] = _NO_FACTS) -> bool:
    """True when every key given in ``when`` holds for ``message`` and its ``facts``."""
    return bool(when.matcher(message, facts))


def reads_facts(when: When) -> bool:
    """True when ``when`` or any condition nested in it tests a routing fact."""
    return when.reads_facts
