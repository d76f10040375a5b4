"""``eai check``: a route to a ``fhir`` destination must name a mapping (``map:``).

Touches: nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eai.registry import CheckSpec, Loc, register_check

__all__ = ["MAP_CHECK", "map_problems"]


def map_problems(data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """Each route to a ``fhir`` destination without ``map:``, at its ``to`` entry."""
    fhir = {
        item.get("name")
        for item in _entries(data, "destinations")
        if isinstance(item, Mapping) and item.get("type") == "fhir"
    }
    problems: list[tuple[Loc, str]] = []
    for index, route in enumerate(_entries(data, "routes")):
        if not isinstance(route, Mapping) or route.get("map"):
            continue
        targets = route.get("to")
        for pos, name in enumerate(targets if isinstance(targets, list | tuple) else ()):
            if isinstance(name, str) and name in fhir:
                problems.append(
                    (
                        ("routes", index, "to", pos),
                        f"destination {name!r} is fhir: the route needs map: (a mapping "
                        "making the FHIR Bundle, or auto)",
                    )
                )
    return problems


def _entries(data: Mapping[str, Any], section: str) -> list[Any] | tuple[Any, ...]:
    items = data.get(section)
    return items if isinstance(items, list | tuple) else ()


MAP_CHECK = CheckSpec(
    name="fhir-map",
    run=map_problems,
    summary="a route to a fhir destination names a mapping (map:)",
)

register_check(MAP_CHECK)
