"""The state of one conversion, as rules and registered functions see it.

Touches: nothing.

:class:`MappingContext` is what a rule function (``- fn: name``) receives:
the source document, the current ``for_each`` item, the resource being
built (plain FHIR JSON) and the other resources of the Bundle (by their
local ``id``), with helpers that compile paths on first use and cache them.
Nothing here logs: values may be patient data.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mappings._fhirmodel import resource_model
from mappings._fhirpath import Pending, Target, compile_target

if TYPE_CHECKING:
    from mappings._source import SourceKind

__all__ = ["MappingContext", "MappingFailure"]

_NAMESPACE = uuid.UUID("6f1c7a52-2f5e-4f51-9a53-3d0b9d6e0a11")
_NAMESPACE_SHA1 = hashlib.sha1(_NAMESPACE.bytes, usedforsecurity=False)


def _uuid5(name: str) -> str:
    """``str(uuid.uuid5(_NAMESPACE, name))`` without the UUID object (RFC 4122 4.3: SHA-1
    of namespace + name, version 5, variant 10), twice as fast: one per resource."""
    digest = _NAMESPACE_SHA1.copy()
    digest.update(name.encode("utf-8"))
    raw = bytearray(digest.digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50
    raw[8] = (raw[8] & 0x3F) | 0x80
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


class MappingFailure(Exception):
    """A conversion step failed; ``where`` is ``file:line`` of the rule, ``reason``
    says what (never a source value)."""

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason
        super().__init__(f"{where}: {reason}" if where else reason)


class MappingContext:
    """One conversion in progress (see the module docstring)."""

    __slots__ = (
        "_seed",
        "_targets",
        "_values",
        "document",
        "instances",
        "item",
        "item_kind",
        "mapping",
        "message_type",
        "pending",
        "resource",
        "source",
        "tables",
        "urls",
    )

    def __init__(
        self,
        mapping: str,
        source: SourceKind,
        document: Any,
        tables: Mapping[str, Mapping[str, str]],
    ) -> None:
        self.mapping = mapping
        self.source = source
        self.document = document
        self.tables = tables
        self.message_type = source.message_type(document)
        self.item: Any = None
        self.item_kind: Any = None
        self.resource: dict[str, Any] = {}
        self.pending: Pending = set()
        self.instances: dict[str, list[dict[str, Any]]] = {}
        """Resources of the Bundle by local id (several with a resource-level for_each)."""
        self.urls: dict[int, str] = {}
        """``id(resource)`` -> its ``urn:uuid`` fullUrl."""
        self._seed = f"{mapping}|{hashlib.sha256(source.seed(document)).hexdigest()}"
        self._values: dict[tuple[str, Any], Any] = {}
        self._targets: dict[tuple[str, str], Target] = {}

    # -- reading the source ------------------------------------------------

    def value(self, path: str) -> str:
        """The source value at ``path`` (relative paths read the current item)."""
        key = (path, self.item_kind)
        reader = self._values.get(key)
        if reader is None:
            reader = self._values[key] = self.source.compile_value(path, self.item_kind)
        return str(reader(self.document, self.item))

    def items(self, path: str) -> Sequence[Any]:
        """The items ``for_each: path`` would visit, from the current item."""
        reader, _kind = self.source.compile_items(path, self.item_kind)
        return reader(self.document, self.item)

    # -- writing FHIR ------------------------------------------------------

    def set(self, path: str, value: Any) -> None:
        """Write ``value`` at element ``path`` of the resource being built ("" = nothing)."""
        resource_type = str(self.resource.get("resourceType", ""))
        key = (resource_type, path)
        target = self._targets.get(key)
        if target is None:
            target = self._targets[key] = compile_target(resource_model(resource_type), path)
        if value in ("", None, []):
            target.mark_pending(self.pending)
        else:
            target.write(self.resource, value, self.pending)

    def ref(self, local_id: str) -> dict[str, str] | None:
        """A Reference to the (first) resource ``local_id`` of this Bundle, or None."""
        found = self.instances.get(local_id)
        if not found:
            return None
        return {"reference": self.urls[id(found[0])]}

    def refs(self, local_id: str) -> list[dict[str, str]]:
        """References to every instance of ``local_id``."""
        return [{"reference": self.urls[id(r)]} for r in self.instances.get(local_id, [])]

    def new_instance(self, local_id: str, resource_type: str) -> dict[str, Any]:
        """Add a resource to the Bundle (its fullUrl is deterministic: same input,
        same urn:uuid) and return it, empty but for ``resourceType``."""
        found = self.instances.setdefault(local_id, [])
        resource: dict[str, Any] = {"resourceType": resource_type}
        name = f"{self._seed}|{local_id}|{len(found)}"
        self.urls[id(resource)] = f"urn:uuid:{_uuid5(name)}"
        found.append(resource)
        return resource

    def at(self, item: Any, item_kind: Any) -> _Scope:
        """``with ctx.at(item, kind):`` reads relative paths from ``item``."""
        return _Scope(self, item, item_kind)


class _Scope:
    __slots__ = ("_ctx", "_item", "_kind", "_saved")

    def __init__(self, ctx: MappingContext, item: Any, kind: Any) -> None:
        self._ctx, self._item, self._kind = ctx, item, kind
        self._saved: tuple[Any, Any] = (None, None)

    def __enter__(self) -> MappingContext:
        self._saved = (self._ctx.item, self._ctx.item_kind)
        self._ctx.item, self._ctx.item_kind = self._item, self._kind
        return self._ctx

    def __exit__(self, *exc: object) -> None:
        self._ctx.item, self._ctx.item_kind = self._saved
