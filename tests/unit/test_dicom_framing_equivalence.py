"""``check_framing`` (with its fast path) gives exactly what the walker it replaced gave.

A differential test: the former walker of :mod:`dicom_router._framing` is kept
here verbatim as the reference (``_ReferenceWalker``, ``_reference_check_framing``;
only the names of the class and of the entry function changed). Both are run on
every pydicom test file that pydicom reads (the dataset after the file meta),
on many truncations and byte mutations of them, and on datasets built by
hypothesis (sequences, items, delimiters, UN of undefined length, encapsulated
pixel data, wrong lengths, bad VRs, tags to collect), themselves truncated and
mutated. They must return the same count and ``found``, or raise
:class:`DatasetFramingError` with the same message.
"""

from __future__ import annotations

import random
import struct
import warnings
from collections.abc import Callable
from functools import cache

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_files

from dicom_router._framing import DatasetFramingError, RawElement, check_framing, inflate
from standins.dicom import dataset_bytes

# -- the reference: the walker before its fast path, verbatim ----------------------------

_UNDEFINED = 0xFFFFFFFF
_ITEM = 0xFFFEE000
_ITEM_END = 0xFFFEE00D
_SEQ_END = 0xFFFEE0DD
_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
_SHORT_VRS = frozenset(
    {
        b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT",
        b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
    }
)  # fmt: skip
_MAX_DEPTH = 64


def _reference_check_framing(
    data: bytes | memoryview,
    *,
    implicit_vr: bool,
    little_endian: bool,
    collect: frozenset[int] = frozenset(),
    found: dict[int, RawElement] | None = None,
) -> int:
    view = memoryview(data)
    walker = _ReferenceWalker(view, little_endian, collect, found)
    return walker.elements(0, len(view), implicit_vr, 0, until_item_end=False)[1]


_STRUCTS = {
    True: (struct.Struct("<HH"), struct.Struct("<H"), struct.Struct("<L")),
    False: (struct.Struct(">HH"), struct.Struct(">H"), struct.Struct(">L")),
}


class _ReferenceWalker:
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
        """
        if depth > _MAX_DEPTH:
            raise self._fail(pos, f"sequences nested more than {_MAX_DEPTH} deep")
        little = self._endian(implicit)
        count = 0
        while pos < end:
            tag = self._tag(pos, end, little)
            if tag == _ITEM_END:
                if not until_item_end:
                    raise self._fail(pos, "item delimitation outside an item")
                return self._delimiter_end(pos, end), count
            if tag in (_ITEM, _SEQ_END):
                raise self._fail(pos, f"unexpected (FFFE,{tag & 0xFFFF:04X}) in a dataset")
            pos, count = self._element(pos, end, tag, implicit, little, depth), count + 1
        if until_item_end:
            raise self._fail(pos, "missing item delimitation (truncated)")
        return pos, count

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
        while pos < end:
            tag = self._tag(pos, end, little)
            if tag == _SEQ_END:
                if defined:
                    raise self._fail(pos, "sequence delimitation in a defined-length sequence")
                return self._delimiter_end(pos, end)
            if tag != _ITEM:
                raise self._fail(pos, "expected an item (FFFE,E000) in a sequence")
            length = self._u32(pos + 4, end, little)
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
        while pos < end:
            tag = self._tag(pos, end, little)
            length = self._u32(pos + 4, end, little)
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


# -- the comparison ----------------------------------------------------------------------

Framer = Callable[..., int]
_ROUTING_TAGS = (0x00080016, 0x00080018, 0x00080060, 0x00080080, 0x0020000D, 0x0020000E)
COLLECT = frozenset({*_ROUTING_TAGS, 0x00100020, 0x00081030, 0x00081140, 0x0040A730, 0x7FE00010})
"""The SCP's routing tags, plus a sequence and the pixel data (never recorded)."""


def _outcome(
    framer: Framer,
    data: bytes | memoryview,
    implicit: bool,
    little: bool,
    collect: frozenset[int],
    with_found: bool,
) -> tuple[object, ...]:
    found: dict[int, RawElement] | None = {} if with_found else None
    try:
        count = framer(
            data, implicit_vr=implicit, little_endian=little, collect=collect, found=found
        )
    except DatasetFramingError as exc:
        return ("refused", str(exc))
    except Exception as exc:  # anything else must be the same too (there should be none)
        return ("crashed", type(exc).__name__, str(exc))
    # Items in order, and the VR's type: a dict compares neither.
    return ("ok", count, None if found is None else [(t, repr(v)) for t, v in found.items()])


def _same(
    data: bytes | memoryview,
    implicit: bool,
    little: bool,
    collect: frozenset[int] = COLLECT,
    with_found: bool = True,
) -> str:
    """Asserts that both walkers give the same; returns how it went ("ok", "refused")."""
    new = _outcome(check_framing, data, implicit, little, collect, with_found)
    old = _outcome(_reference_check_framing, data, implicit, little, collect, with_found)
    assert new == old, (bytes(data[:64]).hex(), len(data), implicit, little)
    assert new[0] != "crashed", new
    return str(new[0])


# -- pydicom's test files ----------------------------------------------------------------


@cache
def _corpus() -> tuple[tuple[str, bytes, bool, bool], ...]:
    """(name, dataset after the file meta, implicit VR, little endian) of every test file
    of pydicom that pydicom reads and whose transfer syntax is known (inflated if
    deflated)."""
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in sorted(get_testdata_files()):
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
            except Exception:
                continue
            syntax = ds.file_meta.get("TransferSyntaxUID")
            if syntax is None or not syntax.is_transfer_syntax:
                continue
            body = dataset_bytes(path)
            if syntax.is_deflated:
                try:
                    body = inflate(body)
                except DatasetFramingError:
                    continue
            name = path.rsplit("/", 1)[-1]
            out.append((name, body, bool(syntax.is_implicit_VR), bool(syntax.is_little_endian)))
    return tuple(out)


def test_the_corpus_is_pydicoms_test_files() -> None:
    names = {name for name, *_ in _corpus()}
    assert len(names) > 100
    assert {"CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm"} <= names
    assert {"JPEG2000.dcm", "reportsi.dcm", "rtplan.dcm", "MR_truncated.dcm"} <= names


def _cuts_and_mutations(body: bytes, rng: random.Random) -> list[bytes]:
    """Truncations and one- or two-byte mutations, most of them in the first 4 kB (where
    the headers are; the rest is mostly one pixel data value)."""
    n = len(body)
    head = min(n, 4096)
    if n == 0:
        return []
    cuts = {n - k for k in (1, 2, 3, 4, 7, 8, 9, 12) if k <= n}
    cuts |= {rng.randrange(n) for _ in range(4)} | {rng.randrange(head) for _ in range(12)}
    variants = [body[:cut] for cut in sorted(cuts)]
    for i in range(16):
        mutated = bytearray(body)
        for _ in range(1 + i % 2):
            where = rng.randrange(head) if i < 13 else rng.randrange(n)
            mutated[where] = rng.choice((0x00, 0xFF, 0xFE, 0xE0, rng.randrange(256)))
        variants.append(bytes(mutated))
    return variants


def test_same_as_the_reference_on_pydicoms_test_files() -> None:
    seen: dict[str, int] = {"ok": 0, "refused": 0}
    for name, body, implicit, little in _corpus():
        seen[_same(body, implicit, little)] += 1
        seen[_same(memoryview(body), implicit, little, with_found=False)] += 1
        for other_implicit in (False, True):  # read the wrong way: mostly refusals
            for other_little in (False, True):
                _same(body, other_implicit, other_little)
        rng = random.Random(name)
        for variant in _cuts_and_mutations(body, rng):
            seen[_same(variant, implicit, little)] += 1
    # The comparison covered both outcomes, many times.
    assert seen["ok"] > 300 and seen["refused"] > 2000, seen


# -- generated datasets ------------------------------------------------------------------

_ITEM_TAGS = (_ITEM, _ITEM_END, _SEQ_END)
_TAGS = (*COLLECT, 0x00100010, 0x00090010, 0xFFFCFFFC, 0xFFFE0001, 0x00000000, *_ITEM_TAGS)
_VRS = (*sorted(_SHORT_VRS), *sorted(_LONG_VRS), b"\0\0", b"XX", b"ob")


def _tag_bytes(tag: int, little: bool) -> bytes:
    return struct.pack("<HH" if little else ">HH", tag >> 16, tag & 0xFFFF)


def _u32(value: int, little: bool) -> bytes:
    return struct.pack("<L" if little else ">L", value)


def _header(tag: int, vr: bytes, length: int, implicit: bool, little: bool) -> bytes:
    if implicit:
        return _tag_bytes(tag, True) + _u32(length, True)
    if vr in _LONG_VRS:
        return _tag_bytes(tag, little) + vr + b"\0\0" + _u32(length, little)
    short = struct.pack("<H" if little else ">H", length & 0xFFFF)
    return _tag_bytes(tag, little) + vr + short


def _items(items: list[tuple[bool, bytes]], little: bool) -> bytes:
    """Items of a sequence: (defined length, content)."""
    out = b""
    for defined, content in items:
        if defined:
            out += _tag_bytes(_ITEM, little) + _u32(len(content), little) + content
        else:
            out += _tag_bytes(_ITEM, little) + _u32(_UNDEFINED, little) + content
            out += _tag_bytes(_ITEM_END, little) + _u32(0, little)
    return out


_tags = st.one_of(st.sampled_from(_TAGS), st.integers(0, 0xFFFFFFFF))
_ODD_COLLECT = frozenset({*_ITEM_TAGS, -1, 1 << 32, 0x1_0008_0018, 0x1_0010_0010, 0x7FE0_0010})
"""Tags to collect that are items or delimiters (refused all the same) or out of range: the
last two would read as (0008,0019) and (0010,0011) if taken modulo 2**32 the wrong way."""


@st.composite
def _dataset(draw: st.DrawFn, implicit: bool, little: bool, depth: int = 0) -> bytes:
    """Mostly well-formed elements of every kind the walker knows, some of them wrong."""
    little = little or implicit  # implicit VR is always little endian
    parts = []
    for _ in range(draw(st.integers(0, 5 if depth == 0 else 3))):
        kinds = ["value", "value", "value", "garbage", "delimiter", "pixels"]
        if depth < 3:
            kinds += ["sequence", "sequence"] + ([] if implicit else ["un"])
        kind = draw(st.sampled_from(kinds))
        tag = draw(_tags)
        if kind == "value":
            vr = draw(st.sampled_from(_VRS))
            value = draw(st.binary(max_size=10))
            n = len(value)
            length = draw(st.sampled_from([n, n, n, n, 0, n + 1, 0xFFFF, _UNDEFINED]))
            parts.append(_header(tag, vr, length, implicit, little) + value)
        elif kind == "garbage":
            parts.append(draw(st.binary(max_size=12)))
        elif kind == "delimiter":
            length = draw(st.sampled_from([0, 0, 4, _UNDEFINED]))
            parts.append(
                _tag_bytes(draw(st.sampled_from(_ITEM_TAGS)), little) + _u32(length, little)
            )
        elif kind == "pixels":
            vr = draw(st.sampled_from([b"OB", b"OW", b"UN", b"SQ"]))
            fragments = draw(st.lists(st.binary(max_size=8), max_size=3))
            body = _items([(True, f) for f in fragments], little)
            end = _tag_bytes(_SEQ_END, little) + _u32(0, little)
            parts.append(_header(0x7FE00010, vr, _UNDEFINED, implicit, little) + body + end)
        else:  # a sequence; "un": of undefined length in implicit VR (PS3.5 6.2.2)
            nested_implicit = implicit or kind == "un"
            nested_little = little or kind == "un"
            contents = draw(
                st.lists(
                    st.tuples(st.booleans(), _dataset(nested_implicit, nested_little, depth + 1)),
                    max_size=3,
                )
            )
            body = _items(contents, nested_little)
            vr = b"UN" if kind == "un" else draw(st.sampled_from([b"SQ", b"SQ", b"UT", b"OB"]))
            if kind == "sequence" and draw(st.booleans()):
                parts.append(_header(tag, vr, len(body), implicit, little) + body)
            else:
                end = _tag_bytes(_SEQ_END, nested_little) + _u32(0, nested_little)
                parts.append(_header(tag, vr, _UNDEFINED, implicit, little) + body + end)
    return b"".join(parts)


@settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data(), implicit=st.booleans(), little=st.booleans())
def test_same_as_the_reference_on_generated_datasets(
    data: st.DataObject, implicit: bool, little: bool
) -> None:
    body = data.draw(_dataset(implicit, little), label="body")
    collect = data.draw(
        st.one_of(
            st.sampled_from([COLLECT, _ODD_COLLECT]),
            st.frozensets(st.one_of(_tags, st.integers()), max_size=6),
        ),
        label="collect",
    )
    with_found = data.draw(st.booleans(), label="with_found")
    _same(body, implicit, little, collect, with_found)
    if body:
        cut = data.draw(st.integers(0, len(body) - 1), label="cut")
        _same(body[:cut], implicit, little, collect, with_found)
        where = data.draw(st.integers(0, len(body) - 1), label="where")
        mutated = bytearray(body)
        mutated[where] = data.draw(st.integers(0, 255), label="byte")
        _same(bytes(mutated), implicit, little, collect, with_found)


@pytest.mark.parametrize("depth", [63, 64, 65, 70])
@pytest.mark.parametrize("defined", [False, True])
@pytest.mark.parametrize("implicit", [False, True])
def test_same_as_the_reference_on_deep_nesting(depth: int, defined: bool, implicit: bool) -> None:
    content = _header(0x00100010, b"PN", 4, implicit, True) + b"ABCD"
    for _ in range(depth):
        body = _items([(defined, content)], True)
        if defined:
            content = _header(0x00081140, b"SQ", len(body), implicit, True) + body
        else:
            end = _tag_bytes(_SEQ_END, True) + _u32(0, True)
            content = _header(0x00081140, b"SQ", _UNDEFINED, implicit, True) + body + end
    _same(content, implicit, True)
    _same(content[:-3], implicit, True)


@pytest.mark.parametrize("implicit", [False, True])
@pytest.mark.parametrize("little", [False, True])
def test_same_as_the_reference_with_odd_tags_to_collect(implicit: bool, little: bool) -> None:
    elements = [
        _header(tag, b"LO", 2, implicit, little) + b"AB"
        for tag in (0x00080018, 0x00080019, 0x00100010, 0x00100011, 0x0000_0001, 0xFFFE0001)
    ]
    _same(b"".join(elements), implicit, little, _ODD_COLLECT)
    for tag in _ITEM_TAGS:  # an item or a delimiter at the top, with a VR-like length
        stray = (
            _tag_bytes(tag, little or implicit) + _u32(0x4F4C, little or implicit) + b"x" * 0x4F4C
        )
        for collect in (_ODD_COLLECT, frozenset({tag}), frozenset()):
            assert _same(b"".join(elements[:2]) + stray, implicit, little, collect) == "refused"
