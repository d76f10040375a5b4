"""``eai check``: a route to a ``fhir`` destination must name a mapping (``map:``).

Touches: nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eai.config import listed
from eai.registry import CheckSpec, Loc, register_check

__all__ = ["MAP_CHECK", "map_problems"]


def map_problems(data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """Each route to a ``fhir`` destination without ``map:``, at its ``to`` entry."""
    fhir = {
        item.get("name")
        for item in listed(data.get("destinations"))
        if isinstance(item, Mapping) and item.get("type") == "fhir"
    }
    problems: list[tuple[Loc, str]] = []
    for index, route in enumerate(listed(data.get("routes"))):
        if not isinstance(route, Mapping) or route.get("map"):
            continue
        for pos, name in enumerate(listed(route.get("to"))):
            if isinstance(name, str) and name in fhir:
                problems.append(
                    (
                        ("routes", index, "to", pos),
                        f"destination {name!r} is fhir: the route needs map: (a mapping "
                        "making the FHIR Bundle, or auto)",
                    )
                )
    return problems


MAP_CHECK = CheckSpec(
    name="fhir-map",
    run=map_problems,
    summary="a route to a fhir destination names a mapping (map:)",
)

register_check(MAP_CHECK)
