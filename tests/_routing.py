"""A routable test message (header and fields) and route/when builders for the routing tests.

Touches: nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eai.config import Route, When

__all__ = ["Header", "Message", "msg", "route", "when"]


@dataclass(frozen=True)
class Header:
    message_type: str = "ADT^A01"
    sending_application: str = "ORBIS"
    sending_facility: str = "CHU-X"


@dataclass(frozen=True)
class Message:
    header: Header = field(default_factory=Header)
    fields: dict[str, str] = field(default_factory=dict)

    def get(self, path: str) -> str:
        return self.fields.get(path, "")


def msg(message_type: str = "ADT^A01", fields: dict[str, str] | None = None) -> Message:
    return Message(Header(message_type=message_type), fields or {})


def when(data: dict[str, Any]) -> When:
    return When.model_validate(data)


def route(name: str, when_: dict[str, Any] | None = None, **kw: Any) -> Route:
    data: dict[str, Any] = {
        "name": name,
        "from": kw.get("from_", ["in"]),
        "to": kw.get("to", ["out"]),
    }
    if when_ is not None:
        data["when"] = when_
    return Route.model_validate(data)
