"""The source kinds a mapping reads from (``source: hl7v2``, ``source: cda``), as a registry.

Touches: nothing.

A source kind parses a payload into a document and compiles the source
paths of a mapping file into readers, once, at load time (a path that does
not parse is a file:line issue). At run time a reader takes the document and
the current ``for_each`` item (``None`` at the top) and returns text ("" when
absent). A new kind (CDA: XPath on an lxml tree) is one module that calls
:func:`register_source`; :mod:`mappings._hl7v2` is the HL7 v2 one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

__all__ = [
    "ExistsReader",
    "ItemsReader",
    "SourceKind",
    "ValueReader",
    "register_source",
    "source_kind",
    "source_kinds",
]

ValueReader = Callable[[Any, Any], str]
"""``(document, item) -> text``; "" when absent."""
ItemsReader = Callable[[Any, Any], Sequence[Any]]
"""``(document, item) -> items`` for ``for_each``."""
ExistsReader = Callable[[Any, Any], bool]


class SourceKind(Protocol):
    """What the engine needs from a kind of source document.

    ``item_kind`` values are opaque tokens the kind gives back from
    :meth:`compile_items` and receives when compiling paths relative to those
    items (``None``: top level, no item).
    """

    name: str
    content_type: str
    """The ``eai.content`` type whose payloads this kind reads."""

    def parse(self, payload: bytes) -> Any:
        """The document; raises :class:`eai.errors.InputError` when it cannot."""
        ...

    def from_routable(self, routable: object) -> Any | None:
        """The document from what the content parser already made, or None."""
        ...

    def message_type(self, document: Any) -> str:
        """``ADT^A01`` (HL7 v2), ``CDA^11502-2``...: what ``message_type`` tests."""
        ...

    def seed(self, document: Any) -> bytes:
        """Bytes identifying the input, for the Bundle's deterministic ``urn:uuid``s."""
        ...

    def compile_value(self, path: str, item_kind: Any) -> ValueReader:
        """Raises ValueError with the expected syntax when ``path`` is malformed."""
        ...

    def compile_exists(self, path: str, item_kind: Any) -> ExistsReader: ...

    def compile_items(self, path: str, item_kind: Any) -> tuple[ItemsReader, Any]:
        """The reader of the items and the kind of those items."""
        ...


_kinds: dict[str, SourceKind] = {}


def register_source(kind: SourceKind) -> None:
    if kind.name in _kinds and _kinds[kind.name] is not kind:
        raise ValueError(f"source kind {kind.name!r} registered twice")
    _kinds[kind.name] = kind


def source_kind(name: str) -> SourceKind | None:
    _load_builtin()
    return _kinds.get(name)


def source_kinds() -> list[str]:
    _load_builtin()
    return sorted(_kinds)


def _load_builtin() -> None:
    if "hl7v2" not in _kinds:
        from mappings import _hl7v2  # noqa: F401 - registers "hl7v2"
