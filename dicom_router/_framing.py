"""Checks that an encoded dataset is complete: every element, item and delimiter fits.

Touches: nothing.

pydicom reads a truncated file without complaint (its own test files
``MR_truncated.dcm`` and ``rtplan_truncated.dcm`` load silently: the last value
is just shorter). The SCP must refuse such a dataset, so before anything else it
walks the encoded bytes (PS3.5 section 7: data elements, sequences of items,
encapsulated pixel data) without decoding any value, and raises
:class:`DatasetFramingError` when a length points past the end, a delimiter is
missing, or explicit VR bytes are not a VR. Cost: a fraction of a microsecond
per element, nothing per pixel.

Fast path: :meth:`_Walker.elements` hands runs of elements to
:meth:`_Walker._explicit_run` / :meth:`_Walker._implicit_run`, tight loops that
read each element header with one ``struct`` unpack (the four tag bytes as one
integer "key", the VR and the short length at once in explicit VR) and skip the
common element: a defined-length value that fits, not a sequence, not an item or
delimiter. On the way they record the top-level elements to collect, as the
general code does (same tuple). Any other element (sequences, items, undefined
lengths, encapsulated pixel data, truncation, bad VRs) stops the run and goes to
the general per-element code, :meth:`_Walker._step`, from the same position: the
fast path never raises, so the errors and their messages are the general code's.
Items and fragments are read with one unpack per header too.
"""

from __future__ import annotations

import functools
import struct
import zlib
from collections.abc import Mapping

__all__ = ["DatasetFramingError", "RawElement", "check_framing", "inflate"]

_UNDEFINED = 0xFFFFFFFF
_ITEM = 0xFFFEE000
_ITEM_END = 0xFFFEE00D
_SEQ_END = 0xFFFEE0DD
_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
_LONG_VRS_BUT_SQ = _LONG_VRS - {b"SQ"}
_SHORT_VRS = frozenset(
    {
        b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT",
        b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
    }
)  # fmt: skip
_MAX_DEPTH = 64
MAX_INFLATED = 1 << 30
"""Largest inflated dataset accepted from a deflated transfer syntax (a deflate bomb guard)."""


class DatasetFramingError(ValueError):
    """The encoded dataset is truncated or malformed (the message says where)."""


def inflate(data: bytes | memoryview, limit: int = MAX_INFLATED) -> bytes:
    """Raw-deflate decompression (Deflated Explicit VR Little Endian), at most ``limit`` bytes."""
    d = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        out = d.decompress(data, limit)
    except zlib.error as exc:
        raise DatasetFramingError(f"deflated dataset cannot be inflated: {exc}") from None
    if d.unconsumed_tail:
        raise DatasetFramingError(f"deflated dataset inflates to more than {limit} bytes")
    return out


RawElement = tuple[bytes, int, int]
"""A top-level element found by :func:`check_framing`: (explicit VR or b"", value offset,
length)."""


def check_framing(
    data: bytes | memoryview,
    *,
    implicit_vr: bool,
    little_endian: bool,
    collect: frozenset[int] = frozenset(),
    found: dict[int, RawElement] | None = None,
) -> int:
    """Walks the whole dataset; returns the number of top-level elements.

    Raises :class:`DatasetFramingError` when it is not exactly a sequence of
    well-formed elements ending at the end of ``data``. The top-level elements
    whose tags are in ``collect`` (defined length) are recorded in ``found`` on
    the way, so that their values can be decoded without another pass.
    """
    view = memoryview(data)
    walker = _Walker(view, little_endian, collect, found)
    return walker.elements(0, len(view), implicit_vr, 0, until_item_end=False)[1]


_STRUCTS = {
    True: (struct.Struct("<HH"), struct.Struct("<H"), struct.Struct("<L")),
    False: (struct.Struct(">HH"), struct.Struct(">H"), struct.Struct(">L")),
}

# The fast path reads the four tag bytes as one unsigned 32-bit "key" in the byte order of
# the dataset (for little endian: element << 16 | group), which spares building the tag.
_EXPLICIT_HEADERS = {True: struct.Struct("<L2sH"), False: struct.Struct(">L2sH")}
"""Key, VR and (short VR) length of an explicit VR element header."""
_IMPLICIT_HEADER = struct.Struct("<LL")
"""Key and length of an implicit VR element header (always little endian)."""
_ITEM_HEADERS = {True: struct.Struct("<HHL"), False: struct.Struct(">HHL")}
"""Group, element and length of an item or delimiter header."""


def _key(tag: int, little: bool) -> int:
    """The encoded four bytes of ``tag`` (group, then element) read as one 32-bit integer."""
    return (tag & 0xFFFF) << 16 | tag >> 16 if little else tag


_DELIMITERS = {
    little: {_key(tag, little): -1 for tag in (_ITEM, _ITEM_END, _SEQ_END)}
    for little in (True, False)
}
"""Keys of the item and delimitation tags, which the fast path leaves to the general code."""
_ITEM_END_KEYS = {True: _key(_ITEM_END, True), False: _key(_ITEM_END, False)}


@functools.lru_cache(maxsize=32)
def _watched(collect: frozenset[int], little: bool) -> Mapping[int, int]:
    """Key -> tag of the top-level elements the fast path records (``collect``), and key
    -> -1 of the tags it leaves to the general code (items and delimiters, which win:
    collected or not, they are refused). Cached: the SCP passes the same ``collect``."""
    collected = {_key(tag, little): tag for tag in collect if 0 <= tag <= 0xFFFFFFFF}
    return collected | _DELIMITERS[little]  # read only (Mapping): it is shared


class _Walker:
    """Implicit VR is always little endian, also when nested in an explicit UN
    element of undefined length (PS3.5 6.2.2): ``little`` is per level."""

    def __init__(
        self,
        data: memoryview,
        little_endian: bool,
        collect: frozenset[int] = frozenset(),
        found: dict[int, RawElement] | None = None,
    ) -> None:
        self.data = data
        self.little = little_endian
        self.collect = collect if found is not None else frozenset()
        self.found: dict[int, RawElement] = found if found is not None else {}

    def _fail(self, offset: int, what: str) -> DatasetFramingError:
        return DatasetFramingError(f"at byte {offset}: {what}")

    def _endian(self, implicit: bool) -> bool:
        return True if implicit else self.little

    def _tag(self, pos: int, end: int, little: bool) -> int:
        if pos + 4 > end:
            raise self._fail(pos, "truncated element tag")
        group, elem = _STRUCTS[little][0].unpack_from(self.data, pos)
        return int(group) << 16 | int(elem)

    def _delimiter_end(self, pos: int, end: int) -> int:
        if pos + 8 > end:
            raise self._fail(pos, "truncated delimitation item")
        return pos + 8

    def _u32(self, pos: int, end: int, little: bool) -> int:
        if pos + 4 > end:
            raise self._fail(pos, "truncated length")
        return int(_STRUCTS[little][2].unpack_from(self.data, pos)[0])

    def elements(
        self, pos: int, end: int, implicit: bool, depth: int, *, until_item_end: bool
    ) -> tuple[int, int]:
        """Walks elements from ``pos``; returns (position after, count).

        With ``until_item_end`` (an undefined-length item) it stops after the
        item delimitation; otherwise it must reach ``end`` exactly.

        The fast path (:meth:`_implicit_run`, :meth:`_explicit_run`) goes as far
        as it can; the element where it stops goes to :meth:`_step`.
        """
        if depth > _MAX_DEPTH:
            raise self._fail(pos, f"sequences nested more than {_MAX_DEPTH} deep")
        little = self._endian(implicit)
        watched = _watched(self.collect, little) if depth == 0 else _DELIMITERS[little]
        count = 0
        while pos < end:
            if implicit:
                pos, run = self._implicit_run(pos, end, watched)
            else:
                pos, run = self._explicit_run(pos, end, little, watched)
            count += run
            if pos >= end:
                break
            if until_item_end and pos + 8 <= end and self._is_item_end(pos, little):
                return pos + 8, count  # as by _step, without reading the tag again
            pos, done = self._step(pos, end, implicit, little, depth, until_item_end)
            if done:
                return pos, count
            count += 1
        if until_item_end:
            raise self._fail(pos, "missing item delimitation (truncated)")
        return pos, count

    def _explicit_run(
        self, pos: int, end: int, little: bool, watched: Mapping[int, int]
    ) -> tuple[int, int]:
        """The fast path in explicit VR: skips elements from ``pos`` while they are
        neither sequences nor of undefined length nor items or delimiters, and fit
        before ``end``; records those of ``watched`` keys on the way. Returns
        (where it stopped, the number of elements skipped)."""
        data, found, last = self.data, self.found, end - 8
        header = _EXPLICIT_HEADERS[little].unpack_from
        u32 = _STRUCTS[little][2].unpack_from
        short_vrs, long_vrs = _SHORT_VRS, _LONG_VRS_BUT_SQ
        count = 0
        while pos <= last:
            key, vr, length = header(data, pos)
            if vr in short_vrs:
                after = pos + 8 + length
            elif vr in long_vrs and pos + 12 <= end:
                (length,) = u32(data, pos + 8)
                if length == _UNDEFINED:
                    break
                after = pos + 12 + length
            else:
                break
            if after > end:
                break
            if key in watched:
                tag = watched[key]
                if tag < 0:
                    break
                found[tag] = (vr, after - length, length)
            pos = after
            count += 1
        return pos, count

    def _implicit_run(self, pos: int, end: int, watched: Mapping[int, int]) -> tuple[int, int]:
        """:meth:`_explicit_run` in implicit VR (where a sequence of defined length is
        skipped like any value, as by :meth:`_element`)."""
        data, found, last = self.data, self.found, end - 8
        header = _IMPLICIT_HEADER.unpack_from
        count = 0
        while pos <= last:
            key, length = header(data, pos)
            after = pos + 8 + length
            if length == _UNDEFINED or after > end:
                break
            if key in watched:
                tag = watched[key]
                if tag < 0:
                    break
                found[tag] = (b"", pos + 8, length)
            pos = after
            count += 1
        return pos, count

    def _is_item_end(self, pos: int, little: bool) -> bool:
        key: int = _STRUCTS[little][2].unpack_from(self.data, pos)[0]
        return key == _ITEM_END_KEYS[little]

    def _step(
        self, pos: int, end: int, implicit: bool, little: bool, depth: int, until_item_end: bool
    ) -> tuple[int, bool]:
        """One element of :meth:`elements` at ``pos``, the general way: returns (position
        after, whether it was the item delimitation that ends the item)."""
        tag = self._tag(pos, end, little)
        if tag == _ITEM_END:
            if not until_item_end:
                raise self._fail(pos, "item delimitation outside an item")
            return self._delimiter_end(pos, end), True
        if tag in (_ITEM, _SEQ_END):
            raise self._fail(pos, f"unexpected (FFFE,{tag & 0xFFFF:04X}) in a dataset")
        return self._element(pos, end, tag, implicit, little, depth), False

    def _element(
        self, pos: int, end: int, tag: int, implicit: bool, little: bool, depth: int
    ) -> int:
        start = pos
        pos += 4
        vr = b""
        if implicit:
            length = self._u32(pos, end, little)
            pos += 4
        else:
            if pos + 4 > end:
                raise self._fail(pos, "truncated VR and length")
            vr = bytes(self.data[pos : pos + 2])
            if vr in _LONG_VRS:
                length = self._u32(pos + 4, end, little)
                pos += 8
            elif vr in _SHORT_VRS:
                length = int(_STRUCTS[little][1].unpack_from(self.data, pos + 2)[0])
                pos += 4
            else:
                raise self._fail(start, f"{_show(tag)} has no valid explicit VR")
        if length != _UNDEFINED:
            if pos + length > end:
                raise self._fail(
                    start, f"{_show(tag)} announces {length} bytes, {end - pos} left (truncated)"
                )
            if vr == b"SQ":
                self._items(pos, pos + length, implicit, depth, defined=True)
            elif depth == 0 and tag in self.collect:
                self.found[tag] = (vr, pos, length)
            return pos + length
        # Undefined length: encapsulated pixel data (fragments) or a sequence.
        if vr in (b"OB", b"OW") or (implicit and tag == 0x7FE00010):
            return self._fragments(pos, end, little)
        return self._items(pos, end, implicit or vr == b"UN", depth, defined=False)

    def _items(self, pos: int, end: int, implicit: bool, depth: int, *, defined: bool) -> int:
        """Items of a sequence from ``pos``; ``defined``: the sequence ends at ``end``."""
        little = self._endian(implicit)
        header = _ITEM_HEADERS[little].unpack_from
        while pos < end:
            truncated = pos + 8 > end
            if truncated:
                tag, length = self._tag(pos, end, little), 0
            else:
                group, elem, length = header(self.data, pos)
                tag = group << 16 | elem
            if tag == _SEQ_END:
                if defined:
                    raise self._fail(pos, "sequence delimitation in a defined-length sequence")
                return self._delimiter_end(pos, end)
            if tag != _ITEM:
                raise self._fail(pos, "expected an item (FFFE,E000) in a sequence")
            if truncated:
                raise self._fail(pos + 4, "truncated length")
            pos += 8
            if length == _UNDEFINED:
                pos = self.elements(pos, end, implicit, depth + 1, until_item_end=True)[0]
            else:
                if pos + length > end:
                    raise self._fail(pos, f"item announces {length} bytes (truncated)")
                self.elements(pos, pos + length, implicit, depth + 1, until_item_end=False)
                pos += length
        if not defined:
            raise self._fail(pos, "missing sequence delimitation (truncated)")
        return pos

    def _fragments(self, pos: int, end: int, little: bool) -> int:
        """Encapsulated pixel data: items of defined length, then the sequence delimiter."""
        header = _ITEM_HEADERS[little].unpack_from
        while pos < end:
            if pos + 8 > end:  # truncated: one of these raises
                self._tag(pos, end, little)
                self._u32(pos + 4, end, little)
            group, elem, length = header(self.data, pos)
            tag = group << 16 | elem
            pos += 8
            if tag == _SEQ_END:
                return pos
            if tag != _ITEM or length == _UNDEFINED:
                raise self._fail(pos - 8, "malformed encapsulated pixel data fragment")
            if pos + length > end:
                raise self._fail(pos, f"fragment announces {length} bytes (truncated)")
            pos += length
        raise self._fail(pos, "missing sequence delimitation after pixel data (truncated)")


def _show(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
