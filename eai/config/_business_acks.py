"""The ``business_acks`` check: a route's return destination is declared and takes HL7 v2.

Touches: nothing (reads the connector registry).

A route's ``business_acks`` names the destination where its deliveries' follow-ups
(CI-SIS ZAM business acknowledgements, HL7 v2) go back to the establishment; a name that
no destination has, or a destination that does not accept ``application/hl7-v2``, is
reported at the key (``FILE:LINE:COL``).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from eai import registry
from eai.config._raw import listed
from eai.config._yaml import Loc
from eai.messages import MEDIA_HL7V2

__all__ = ["business_ack_problems"]


def business_ack_problems(data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """One problem per route whose ``business_acks`` is not a declared destination that
    accepts HL7 v2 (malformed entries are skipped: validation reports them)."""
    kinds = {
        d["name"]: d.get("type")
        for d in listed(data.get("destinations"))
        if isinstance(d, Mapping) and isinstance(d.get("name"), str)
    }
    specs = registry.destinations()
    problems: list[tuple[Loc, str]] = []
    for index, route in enumerate(listed(data.get("routes"))):
        name = route.get("business_acks") if isinstance(route, Mapping) else None
        if not isinstance(name, str):
            continue
        where: Loc = ("routes", index, "business_acks")
        if name not in kinds:
            hint = difflib.get_close_matches(name, list(kinds), n=1)
            more = f" (did you mean {hint[0]!r}?)" if hint else ""
            problems.append((where, f"unknown destination {name!r}{more}"))
            continue
        kind = kinds[name]
        spec = specs.get(kind) if isinstance(kind, str) else None
        if spec is not None and spec.accepts and MEDIA_HL7V2 not in spec.accepts:
            problems.append(
                (
                    where,
                    f"destination {name!r} ({kind}) accepts {', '.join(spec.accepts)}; "
                    f"business acknowledgements are {MEDIA_HL7V2}",
                )
            )
    return problems
