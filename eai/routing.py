"""Decides which routes, hence which destinations, take a message.

Touches: nothing.

The patterns were checked and compiled when ``routes.yaml`` was loaded
(:mod:`eai.config`); evaluating a route is set lookups, string comparisons and
precompiled regex searches, on the message (``field``) or on the routing facts
its parser derived (``fact``, e.g. the CI-SIS MetaDMPMSS flags); for DICOM,
on an element (``tag``, read with ``message.get``) and the calling AE title
(``calling_ae``, the header's ``sending_application``). A message no
route takes gets an empty decision: the engine keeps it as ``filtered``.
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
        if route.when is not None and not when_matches(route.when, message, facts):
            continue
        names.append(route.name)
        destinations.update(dict.fromkeys(route.to))
    return RouteDecision(tuple(names), tuple(destinations))


def when_matches(when: When, message: Routable, facts: Mapping[str, str] = _NO_FACTS) -> bool:
    """True when every key given in ``when`` holds for ``message`` and its ``facts``."""
    header = message.header
    types = when.message_types
    if types is not None and header.message_type not in types:
        return False
    apps = when.sending_application
    if apps is not None and header.sending_application not in apps:
        return False
    facilities = when.sending_facility
    if facilities is not None and header.sending_facility not in facilities:
        return False
    if when.field is not None and not _field_holds(when, message.get(when.field)):
        return False
    if when.fact is not None and not _field_holds(when, facts.get(when.fact, "")):
        return False
    callers = when.calling_ae
    if callers is not None and header.sending_application not in callers:
        return False  # DICOM: the journal keeps the calling AE title as the sending application
    if when.tag is not None and not _field_holds(when, _read(message, when.tag)):
        return False
    if when.xpath is not None and not _field_holds(when, _read(message, when.xpath)):
        return False  # CDA: the content type's get() evaluates XPath
    if when.all_ is not None and not all(when_matches(w, message, facts) for w in when.all_):
        return False
    if when.any_ is not None and not any(when_matches(w, message, facts) for w in when.any_):
        return False
    return when.not_ is None or not when_matches(when.not_, message, facts)


def reads_facts(when: When) -> bool:
    """True when ``when`` or any condition nested in it tests a routing fact."""
    if when.fact is not None:
        return True
    nested = [*(when.all_ or ()), *(when.any_ or ()), *([when.not_] if when.not_ else [])]
    return any(reads_facts(w) for w in nested)


def _read(message: Routable, path: str) -> str:
    """A DICOM tag or a CDA XPath read on content of another type is absent, not an error."""
    try:
        return message.get(path)
    except ValueError:
        return ""


def _field_holds(when: When, value: str) -> bool:
    """The one comparator given with ``field`` or ``fact`` (the model guarantees there is one)."""
    if when.in_ is not None:
        return value in when.in_
    if when.equals is not None:
        return value == when.equals
    if when.matches is not None:
        return when.matches.search(value) is not None
    if when.exists is not None:
        return (value != "") is when.exists
    return False
