"""The route-to-destination media type check: a destination only gets what it can deliver.

Touches: nothing (reads the connector registry).

A listener declares the media types it journals (``ListenerSpec.produces``), a
destination those it accepts (``DestinationSpec.accepts``). A route hands its
destinations a mapping's FHIR Bundle (``map:``) or its listeners' messages as
received; a destination of the route that accepts none of that is reported at its
place in ``to:``. An undeclared side (``()``) is not checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eai import registry
from eai.config._raw import listed
from eai.config._yaml import Loc
from eai.messages import MEDIA_FHIR_JSON

__all__ = ["media_problems"]


def _types(data: Mapping[str, Any], section: str) -> dict[str, str]:
    return {
        item["name"]: item["type"]
        for item in listed(data.get(section))
        if isinstance(item, Mapping)
        and isinstance(item.get("name"), str)
        and isinstance(item.get("type"), str)
    }


def _handed(route: Mapping[str, Any], listener_types: Mapping[str, str]) -> set[str]:
    """The media types the route hands its destinations ({} when unknown)."""
    if route.get("map"):
        return {MEDIA_FHIR_JSON}
    specs = registry.listeners()
    out: set[str] = set()
    for name in listed(route.get("from")):
        spec = specs.get(listener_types.get(name, "")) if isinstance(name, str) else None
        if spec is not None:
            out.update(spec.produces)
    return out


def media_problems(data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """One problem per route destination that would be handed a media type it does not
    accept (on plain data: malformed entries are skipped, validation reports them)."""
    listener_types = _types(data, "listeners")
    destination_types = _types(data, "destinations")
    specs = registry.destinations()
    problems: list[tuple[Loc, str]] = []
    for index, route in enumerate(listed(data.get("routes"))):
        if not isinstance(route, Mapping):
            continue
        handed = _handed(route, listener_types)
        for position, name in enumerate(listed(route.get("to"))):
            kind = destination_types.get(name) if isinstance(name, str) else None
            spec = specs.get(kind or "")
            if spec is None or not spec.accepts:
                continue
            refused = sorted(handed - set(spec.accepts))
            if not refused:
                continue
            what = f"the FHIR Bundle of map: {route['map']}" if route.get("map") else "messages"
            problems.append(
                (
                    ("routes", index, "to", position),
                    f"destination {name!r} ({kind}) accepts {', '.join(spec.accepts)}; "
                    f"this route hands it {what} in {', '.join(refused)}",
                )
            )
    return problems
