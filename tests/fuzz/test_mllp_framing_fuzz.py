"""Property tests of the MLLP frame decoder: any bytes, any chunking."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.mllp._framing import Frame, FrameDecoder, FrameEvent, frame

pytestmark = pytest.mark.fuzz

LIMIT = 64


def decode_chunked(data: bytes, cuts: list[int], limit: int = LIMIT) -> list[FrameEvent]:
    decoder = FrameDecoder(limit, head_bytes=16)
    events: list[FrameEvent] = []
    start = 0
    for cut in sorted(set(c % (len(data) + 1) for c in cuts)) + [len(data)]:
        events += decoder.feed(data[start:cut])
        start = max(start, cut)
    return events + decoder.eof()


# Bytes rich in the framing characters, so that the interesting paths are hit.
stream_bytes = st.lists(
    st.one_of(st.sampled_from([b"\x0b", b"\x1c", b"\r", b"\n", b" "]), st.binary(max_size=12)),
    max_size=40,
).map(b"".join)
cut_points = st.lists(st.integers(min_value=0, max_value=10_000), max_size=30)

# Payloads of a valid stream never hold SB or EB.
payloads = st.lists(
    st.binary(min_size=1, max_size=2 * LIMIT).map(
        lambda b: b.replace(b"\x0b", b"").replace(b"\x1c", b"")
    ),
    max_size=10,
)


@settings(max_examples=400, deadline=None)
@given(data=stream_bytes, cuts=cut_points)
def test_any_bytes_any_chunking_never_raises_and_gives_the_same_events(
    data: bytes, cuts: list[int]
) -> None:
    whole = decode_chunked(data, [])
    assert decode_chunked(data, cuts) == whole
    assert decode_chunked(data, list(range(len(data)))) == whole  # byte by byte


@settings(max_examples=300, deadline=None)
@given(parts=payloads, cuts=cut_points, junk=st.sampled_from([b"", b"\r\n", b"\n"]))
def test_valid_stream_frames_come_out_identical(
    parts: list[bytes], cuts: list[int], junk: bytes
) -> None:
    stream = b"".join(frame(p) + junk for p in parts)
    frames = [e.payload for e in decode_chunked(stream, cuts) if isinstance(e, Frame)]
    assert frames == [p for p in parts if 0 < len(p) <= LIMIT]


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=3000), cuts=cut_points)
def test_memory_is_bounded_by_the_limit(data: bytes, cuts: list[int]) -> None:
    decoder = FrameDecoder(LIMIT)
    start = 0
    for cut in sorted(set(c % (len(data) + 1) for c in cuts)) + [len(data)]:
        decoder.feed(data[start:cut])
        start = max(start, cut)
        assert len(decoder._buf) <= LIMIT
    decoder.eof()
