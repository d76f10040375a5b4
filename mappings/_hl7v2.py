"""The ``hl7v2`` source kind: mapping paths on a message read by ``eai.hl7``.

Touches: nothing.

Paths (``docs/mappings.md``), all numbers 1-based:

- absolute: ``SEG[occ]-field[rep].component.subcomponent`` as in ``eai.hl7``
  (``PID-5.1``, ``PID-3[2].4.2``), a bare segment ``PID`` (``exists``,
  ``for_each``), ``SEG[*]`` (every occurrence, in ``for_each``);
- a repetition filter instead of ``[rep]``: ``[type=INS]`` compares the type
  component of the field's data type (CX 5, XPN/XAD/XON 7, XTN 2, XCN 13;
  see :data:`TYPE_COMPONENT`), ``[N=VALUE]`` compares component N; the value
  is the first matching repetition, ``for_each`` takes them all; ``[*]``
  iterates every repetition;
- relative to a ``for_each`` item: ``.``, ``.4``, ``.4.2`` for a field
  repetition; ``-5``, ``-3[type=INS].1`` for a segment.

Values are leaves as ``Segment.get`` returns them (escapes resolved); the
HL7 explicit null ``""`` reads as empty.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eai import hl7
from eai.hl7 import Hl7Message, Segment
from mappings._source import ExistsReader, ItemsReader, ValueReader, register_source

__all__ = ["TYPE_COMPONENT", "Hl7v2Source"]

_CX, _XPN, _XAD, _XTN, _XON, _XCN = 5, 7, 7, 2, 7, 13
TYPE_COMPONENT: dict[tuple[str, int], int] = {
    **{("PID", f): _CX for f in (2, 3, 4, 18, 21)},
    **{("PID", f): _XPN for f in (5, 6, 9)},
    ("PID", 11): _XAD,
    **{("PID", f): _XTN for f in (13, 14, 40)},
    **{("MRG", f): _CX for f in (1, 2, 3, 4, 5, 6)},
    ("MRG", 7): _XPN,
    **{("PV1", f): _CX for f in (19, 50)},
    **{("PV1", f): _XCN for f in (7, 8, 9, 17, 52)},
    **{("NK1", f): _XPN for f in (2, 30)},
    ("NK1", 4): _XAD,
    **{("NK1", f): _XTN for f in (5, 6, 31)},
    ("NK1", 12): _CX,
    ("PD1", 4): _XCN,
    ("PD1", 3): _XON,
    ("ROL", 4): _XCN,
    **{("ZBE", f): _XON for f in (7, 8)},
}
"""Which component holds the type code, per field (for ``[type=...]``)."""

_NUM = r"[1-9][0-9]{0,5}"
_REP = r"\[(?P<rep>[^\]]+)\]"
_TAIL = rf"(?:\.(?P<comp>{_NUM})(?:\.(?P<sub>{_NUM}))?)?"
_ABSOLUTE = re.compile(
    rf"(?P<seg>[A-Z][A-Z0-9]{{2}})(?:\[(?P<occ>{_NUM}|\*)\])?"
    rf"(?:-(?P<field>{_NUM})(?:{_REP})?{_TAIL})?"
)
_IN_SEGMENT = re.compile(rf"-(?P<field>{_NUM})(?:{_REP})?{_TAIL}")
_IN_FIELD = re.compile(rf"\.|\.(?P<comp>{_NUM})(?:\.(?P<sub>{_NUM}))?")
_FILTER = re.compile(r"(?P<key>type|[1-9][0-9]{0,2})=(?P<value>[^\]]*)")
_SYNTAX = (
    "expected SEG[occ]-field[rep].component.subcomponent (PID-5.1, PID-3[type=INS].1, "
    "PID-3[5=PI], PID-3[*]), a segment (PID, OBX[*]), or, in for_each, .4.2 (field item) "
    "or -5.1 (segment item)"
)

_SEGMENT = "segment"  # item kinds: (_SEGMENT, name) and (_FIELD, name, field)
_FIELD = "field"


@dataclass(frozen=True, slots=True)
class _Rep:
    """Which repetitions: ``number`` (1-based; 0 = every one) or the first/all whose
    component ``component`` equals ``value``."""

    number: int = 1
    component: int = 0
    value: str = ""


@dataclass(frozen=True, slots=True)
class _FieldItem:
    segment: Segment
    field: int
    repetition: int


def _clean(value: str) -> str:
    return "" if value == '""' else value


def _rep(text: str | None, segment: str, field: int, *, many: bool) -> _Rep:
    if text is None:
        return _Rep(0 if many else 1)
    if text == "*":
        if not many:
            raise ValueError("[*] iterates: use it in for_each only")
        return _Rep(0)
    if text.isdigit():
        return _Rep(int(text))
    m = _FILTER.fullmatch(text)
    if m is None:
        raise ValueError(f"invalid repetition [{text}]: use [2], [*], [type=INS] or [5=PI]")
    if m["key"] == "type":
        component = TYPE_COMPONENT.get((segment, field))
        if component is None:
            raise ValueError(
                f"[type=...] does not know the data type of {segment}-{field}: "
                f"name the component, e.g. [5={m['value']}]"
            )
    else:
        component = int(m["key"])
    return _Rep(0, component, m["value"])


def _reps(segment: Segment, field: int, rep: _Rep) -> list[int]:
    """The 1-based repetitions of ``field`` that ``rep`` selects."""
    if rep.number:
        return [rep.number]
    if rep.component:
        types = segment.get_all(field, rep.component)
        return [i for i, t in enumerate(types, 1) if t == rep.value]
    return list(range(1, len(segment.get_all(field)) + 1))


def _field_value(field: int, rep: _Rep, comp: int, sub: int) -> Callable[[Segment], str]:
    if rep.number:
        number = rep.number

        def fixed(segment: Segment) -> str:
            return _clean(segment.get(field, number, comp, sub))

        return fixed

    def filtered(segment: Segment) -> str:
        found = _reps(segment, field, rep)
        return _clean(segment.get(field, found[0], comp, sub)) if found else ""

    return filtered


def _int(text: str | None) -> int:
    return int(text) if text else 0


class Hl7v2Source:
    """Paths on :class:`eai.hl7.Hl7Message` (see the module docstring)."""

    name = "hl7v2"
    content_type = "hl7v2"

    def parse(self, payload: bytes) -> Hl7Message:
        return hl7.parse(payload)

    def from_routable(self, routable: object) -> Hl7Message | None:
        return routable if isinstance(routable, Hl7Message) else None

    def message_type(self, document: Any) -> str:
        return str(document.header.message_type)

    def seed(self, document: Any) -> bytes:
        return bytes(document.raw)

    # -- compiling ---------------------------------------------------------

    def compile_value(self, path: str, item_kind: Any) -> ValueReader:
        relative = self._relative(path, item_kind, many=False)
        if relative is not None:
            return relative
        m = self._absolute(path)
        name, occ = m["seg"], m["occ"]
        if occ == "*":
            raise ValueError("[*] iterates: use it in for_each only")
        occurrence = _int(occ) or 1
        if m["field"] is None:
            raise ValueError(f"{path!r} names a segment, not a value: add -field")
        field = int(m["field"])
        rep = _rep(m["rep"], name, field, many=False)
        comp, sub = _tail(m)
        if rep.number:
            number = rep.number

            def fixed(document: Any, item: Any) -> str:
                segment = document.segment(name, occurrence)
                if segment is None:
                    return ""
                found: str = segment.get(field, number, comp, sub)
                return "" if found == '""' else found

            return fixed
        read = _field_value(field, rep, comp, sub)

        def value(document: Any, item: Any) -> str:
            segment = document.segment(name, occurrence)
            return read(segment) if segment is not None else ""

        return value

    def compile_exists(self, path: str, item_kind: Any) -> ExistsReader:
        m = _ABSOLUTE.fullmatch(path)
        if m is not None and m["field"] is None:
            name, occ = m["seg"], m["occ"]
            occurrence = 1 if occ in (None, "*") else int(occ)
            return lambda document, item: document.segment(name, occurrence) is not None
        read = self.compile_value(path, item_kind)
        return lambda document, item: bool(read(document, item))

    def compile_items(self, path: str, item_kind: Any) -> tuple[ItemsReader, Any]:
        if _kind(item_kind) == _SEGMENT and path.startswith("-"):
            m = _IN_SEGMENT.fullmatch(path)
            if m is None or m["comp"]:
                raise ValueError(f"invalid for_each path {path!r}: use -field or -field[...]")
            name, field = item_kind[1], int(m["field"])
            rep = _rep(m["rep"], name, field, many=True)
            items = self._field_items(field, rep, lambda document, item: item)
            return items, (_FIELD, name, field)
        m = self._absolute(path)
        if m["comp"]:
            raise ValueError(f"for_each iterates segments or fields, not components: {path!r}")
        name, occ = m["seg"], m["occ"]
        if m["field"] is None:
            if occ is not None and occ != "*":
                occurrence = int(occ)

                def one(document: Any, item: Any) -> Sequence[Any]:
                    found = document.segment(name, occurrence)
                    return [found] if found is not None else []

                return one, (_SEGMENT, name)

            def every(document: Any, item: Any) -> Sequence[Any]:
                return [s for s in document.segments() if s.name == name]

            return every, (_SEGMENT, name)
        if occ == "*":
            raise ValueError("iterate one field of one segment occurrence, e.g. OBX[2]-5[*]")
        occurrence = _int(occ) or 1
        field = int(m["field"])
        rep = _rep(m["rep"], name, field, many=True)

        def segment_of(document: Any, item: Any) -> Segment | None:
            found: Segment | None = document.segment(name, occurrence)
            return found

        return self._field_items(field, rep, segment_of), (_FIELD, name, field)

    # -- helpers -----------------------------------------------------------

    @staticmethod
    def _field_items(
        field: int, rep: _Rep, segment_of: Callable[[Any, Any], Segment | None]
    ) -> ItemsReader:
        def items(document: Any, item: Any) -> Sequence[Any]:
            segment = segment_of(document, item)
            if segment is None:
                return []
            return [_FieldItem(segment, field, r) for r in _reps(segment, field, rep)]

        return items

    @staticmethod
    def _absolute(path: str) -> re.Match[str]:
        m = _ABSOLUTE.fullmatch(path)
        if m is None:
            raise ValueError(f"invalid HL7 v2 path {path!r}: {_SYNTAX}")
        return m

    @staticmethod
    def _relative(path: str, item_kind: Any, *, many: bool) -> ValueReader | None:
        if path.startswith("."):
            if _kind(item_kind) != _FIELD:
                raise ValueError(f"{path!r} is relative to a field item: use it under for_each")
            m = _IN_FIELD.fullmatch(path)
            if m is None:
                raise ValueError(f"invalid relative path {path!r}: use ., .4 or .4.2")
            comp, sub = _int(m["comp"]), _int(m["sub"])

            def in_field(document: Any, item: Any) -> str:
                return _clean(item.segment.get(item.field, item.repetition, comp, sub))

            return in_field
        if path.startswith("-"):
            if _kind(item_kind) != _SEGMENT:
                raise ValueError(f"{path!r} is relative to a segment item: use it under for_each")
            m = _IN_SEGMENT.fullmatch(path)
            if m is None:
                raise ValueError(f"invalid relative path {path!r}: use -5, -5.1 or -3[type=X].1")
            field = int(m["field"])
            read = _field_value(field, _rep(m["rep"], item_kind[1], field, many=many), *_tail(m))
            return lambda document, item: read(item)
        return None


def _kind(item_kind: Any) -> str | None:
    return item_kind[0] if isinstance(item_kind, tuple) else None


def _tail(m: re.Match[str]) -> tuple[int, int]:
    return _int(m["comp"]), _int(m["sub"])


register_source(Hl7v2Source())
