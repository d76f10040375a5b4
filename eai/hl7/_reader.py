"""Give lazy, lossless access to the segments and fields of a decoded HL7 v2 message.

Touches: nothing.

``parse`` decodes and splits the payload into segments once (checked by
``read_header``); fields, repetitions, components, subcomponents and escape
sequences are split or resolved only when asked for, and cached. Every segment
is kept in order, Z-segments (ZBE, ZFA, ZFM, ZFD...) and repeated ones included;
``raw`` is the payload exactly as received.

Paths, as read by ``Hl7Message.get`` and checked by ``validate_path``::

    SEG[occ]-field[rep].component.subcomponent

All numbers are 1-based; ``[occ]`` (which occurrence of the segment) and
``[rep]`` (which repetition of the field) default to 1; component and
subcomponent are optional. MSH numbering follows HL7: MSH-1 is the field
separator, MSH-2 the encoding characters, MSH-3 the sending application.

    PV1-2          -> "I"                      patient class
    MSH-9.1        -> "ADT"
    PID-3[2].1     -> "279035121518989"        first component of the 2nd repetition
    PID-3[2].4.2   -> "1.2.250.1.213.1.4.10"   2nd subcomponent of its 4th component
    OBX[3]-5       -> OBX-5 of the third OBX segment
    PID-3          -> "000003^^^CHU-X&000897406&N^PI"   (non-leaf: raw text)

What ``get`` returns: "" when the segment, field or part is absent. A *leaf*
value (no component or subcomponent separator left in it) has its escape
sequences resolved (``\\F\\`` -> ``|``, ``\\.br\\`` -> newline...). A non-leaf value is
the raw text of that element, escapes untouched, so a resolved ``\\S\\`` is never
confused with a real separator. The HL7 explicit null ``""`` is returned as is.
``get_all`` returns the value for each repetition of the field, in order
(``[]`` when the field is empty or absent).
"""

from __future__ import annotations

from typing import Any

from eai.hl7._element import Delimiters, pick, resolve
from eai.hl7._header import MessageHeader, read_message
from eai.hl7._path import parse_path

__all__ = ["Hl7Message", "Segment", "parse"]


def parse(data: bytes, *, default_charset: str = "UNICODE UTF-8") -> Hl7Message:
    """Check and decode ``data`` (see ``read_header``) and return the lazy message.

    Raises InputError (never anything else) when ``data`` is not acceptable.
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    header, text, spans = read_message(data, default_charset)
    return Hl7Message(data, header, text, spans)


_LONG = 4096
"""A segment longer than this (an OBX-5 holding a document) is split separator by
separator: ``str.split`` compares character by character, ``str.find`` skips ahead."""


def _split(text: str, sep: str) -> list[str]:
    if len(text) <= _LONG:
        return text.split(sep)
    parts: list[str] = []
    start = 0
    cut = text.find(sep)
    while cut >= 0:
        parts.append(text[start:cut])
        start = cut + 1
        cut = text.find(sep, start)
    parts.append(text[start:])
    return parts


class Segment:
    """One segment of a message; its fields are split on first use and values cached."""

    __slots__ = ("_codec", "_delims", "_fields", "_text", "_values")

    def __init__(self, text: str, delimiters: Delimiters, codec: str) -> None:
        self._text = text
        self._delims = delimiters
        self._codec = codec
        self._fields: list[str] | None = None
        self._values: dict[tuple[int, int, int, int], str] = {}

    @property
    def name(self) -> str:
        """The segment id, e.g. ``PID`` or ``ZBE``."""
        return self._text[:3]

    @property
    def text(self) -> str:
        """The segment as decoded, without its terminator, escapes untouched."""
        return self._text

    @property
    def fields(self) -> list[str]:
        """Raw field texts; ``fields[n]`` is field n (``fields[0]`` is the name, MSH-1 is ``|``)."""
        if self._fields is None:
            parts = _split(self._text, self._delims.field)
            if parts[0] == "MSH":
                parts.insert(1, self._delims.field)
            self._fields = parts
        return list(self._fields)

    def _field(self, number: int) -> str | None:
        fields = self._fields if self._fields is not None else self.fields
        return fields[number] if 0 < number < len(fields) else None

    def get(
        self, field: int, repetition: int = 1, component: int = 0, subcomponent: int = 0
    ) -> str:
        """Value at 1-based positions (0 = the whole level); "" when absent.

        Leaf values have escapes resolved; see the module docstring.
        """
        key = (field, repetition, component, subcomponent)
        value = self._values.get(key)
        if value is None:
            value = self._compute(*key)
            self._values[key] = value
        return value

    def _compute(self, field: int, repetition: int, component: int, subcomponent: int) -> str:
        text = self._field(field)
        if text is None:
            return ""
        if field <= 2 and self.name == "MSH":  # MSH-1 and MSH-2 are not split
            return text if max(repetition, component, subcomponent) <= 1 else ""
        raw = pick(text, self._delims, repetition, component, subcomponent)
        return "" if raw is None else resolve(raw, self._delims, self._codec)

    def get_all(self, field: int, component: int = 0, subcomponent: int = 0) -> list[str]:
        """The value at ``component``/``subcomponent`` for every repetition of ``field``."""
        text = self._field(field)
        if not text:
            return []
        if field <= 2 and self.name == "MSH":
            return [self.get(field, 1, component, subcomponent)]
        count = text.count(self._delims.repetition) + 1
        return [self.get(field, rep, component, subcomponent) for rep in range(1, count + 1)]

    def __repr__(self) -> str:  # never shows field values: they may be patient data
        return f"<Segment {self.name} ({len(self._text)} chars)>"


class Hl7Message:
    """A received HL7 v2 message: ``raw`` bytes, checked ``header``, lazily split segments."""

    __slots__ = ("_header", "_index", "_memo", "_raw", "_segments", "_spans", "_text")

    def __init__(
        self, raw: bytes, header: MessageHeader, text: str, spans: list[tuple[int, int]]
    ) -> None:
        self._raw = raw
        self._header = header
        self._text = text
        self._spans = spans
        self._segments: list[Segment] | None = None
        self._index: dict[str, list[Segment]] = {}
        self._memo: dict[tuple[str, int], Any] = {}

    @property
    def memo(self) -> dict[tuple[str, int], Any]:
        """What the readers of this package computed from the message, kept with it so
        that each is computed once (the message never changes): the decoded and parsed
        documents of :mod:`eai.hl7._cisis`. Patient data: never log it."""
        return self._memo

    @property
    def raw(self) -> bytes:
        """The payload exactly as received."""
        return self._raw

    @property
    def header(self) -> MessageHeader:
        """The MSH values checked by ``read_header``."""
        return self._header

    @property
    def text(self) -> str:
        """The decoded message, each non-blank segment ended by ``\\r``."""
        text = self._text
        return "".join([text[start:end] + "\r" for start, end in self._spans])

    def segments(self) -> list[Segment]:
        """Every segment, in order (Z-segments and repeated segments included)."""
        return list(self._all())

    def _all(self) -> list[Segment]:
        if self._segments is None:
            d = self._header.delimiters
            codec = self._header.codec
            text = self._text
            self._segments = [Segment(text[start:end], d, codec) for start, end in self._spans]
            for segment in self._segments:
                self._index.setdefault(segment.name, []).append(segment)
        return self._segments

    def segment(self, name: str, occurrence: int = 1) -> Segment | None:
        """The ``occurrence``-th (1-based) segment called ``name``, or None."""
        if self._segments is None:
            self._all()
        found = self._index.get(name)
        if not found or not 0 < occurrence <= len(found):
            return None
        return found[occurrence - 1]

    def get(self, path: str) -> str:
        """The value at ``path`` (see the module docstring); "" when absent.

        Raises ValueError when ``path`` is malformed.
        """
        p = parse_path(path)
        segment = self.segment(p.segment, p.occurrence)
        if segment is None:
            return ""
        return segment.get(p.field, p.repetition or 1, p.component, p.subcomponent)

    def get_all(self, path: str) -> list[str]:
        """The value at ``path`` for every repetition of its field; with ``[rep]``, just that one.

        Raises ValueError when ``path`` is malformed.
        """
        p = parse_path(path)
        segment = self.segment(p.segment, p.occurrence)
        if segment is None:
            return []
        values = segment.get_all(p.field, p.component, p.subcomponent)
        if not p.repetition:
            return values
        return values[p.repetition - 1 : p.repetition]

    def __repr__(self) -> str:  # ids only, never patient data
        h = self._header
        return (
            f"<Hl7Message {h.message_type} control_id={h.control_id!r} {len(self._spans)} segments>"
        )
