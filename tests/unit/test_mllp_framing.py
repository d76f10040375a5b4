"""MLLP framing: ``frame`` and the incremental ``FrameDecoder``."""

from __future__ import annotations

import pytest

from connectors.mllp._framing import Frame, FrameDecoder, FrameEvent, ProtocolError, frame


def decode(data: bytes, limit: int = 1000, chunk: int | None = None) -> list[FrameEvent]:
    decoder = FrameDecoder(limit)
    events: list[FrameEvent] = []
    if chunk is None:
        events += decoder.feed(data)
    else:
        for i in range(0, len(data), chunk):
            events += decoder.feed(data[i : i + chunk])
    return events + decoder.eof()


def test_frame_wraps_payload() -> None:
    assert frame(b"MSH|x") == b"\x0bMSH|x\x1c\r"


@pytest.mark.parametrize("chunk", [None, 1, 2, 3, 7])
def test_frames_whatever_the_chunking(chunk: int | None) -> None:
    stream = frame(b"MSH|1\rPID|1\r") + frame(b"MSH|2\r") + frame(b"x" * 50)
    assert decode(stream, chunk=chunk) == [
        Frame(b"MSH|1\rPID|1\r"),
        Frame(b"MSH|2\r"),
        Frame(b"x" * 50),
    ]


def test_junk_before_start_block_is_reported_once_without_content() -> None:
    assert decode(b"hello" + frame(b"MSH|1"), chunk=2) == [
        ProtocolError("junk", 5),
        Frame(b"MSH|1"),
    ]


def test_whitespace_between_frames_is_tolerated_silently() -> None:
    assert decode(frame(b"A") + b"\r\n" + frame(b"B") + b"\n") == [Frame(b"A"), Frame(b"B")]


def test_trailing_junk_reported_at_eof() -> None:
    assert decode(frame(b"A") + b"zz") == [Frame(b"A"), ProtocolError("junk", 2)]


def test_empty_frame() -> None:
    assert decode(b"\x0b\x1c\r" + frame(b"A")) == [ProtocolError("empty"), Frame(b"A")]


@pytest.mark.parametrize("chunk", [None, 1])
def test_end_block_without_cr(chunk: int | None) -> None:
    assert decode(b"\x0bMSH|1\x1cX" + frame(b"B"), chunk=chunk) == [
        ProtocolError("bad_end", 5, b"MSH|1"),
        ProtocolError("junk", 1),
        Frame(b"B"),
    ]


def test_end_block_then_start_block_directly() -> None:
    assert decode(b"\x0bA\x1c" + frame(b"B")) == [ProtocolError("bad_end", 1, b"A"), Frame(b"B")]


def test_end_block_at_eof() -> None:
    assert decode(b"\x0bA\x1c") == [ProtocolError("bad_end", 1, b"A")]


def test_start_block_inside_a_frame_restarts() -> None:
    assert decode(b"\x0bHALF" + frame(b"FULL")) == [
        ProtocolError("unterminated", 4, b"HALF"),
        Frame(b"FULL"),
    ]


def test_open_frame_at_eof() -> None:
    assert decode(b"\x0bMSH|1") == [ProtocolError("unterminated", 5, b"MSH|1")]


@pytest.mark.parametrize("chunk", [None, 1, 9, 64])
def test_oversize_reported_when_limit_passed_then_discarded(chunk: int | None) -> None:
    big = b"MSH|" + b"y" * 96
    stream = frame(big) + frame(b"OK")
    events = decode(stream, limit=40, chunk=chunk)
    assert events == [ProtocolError("oversize", 41, big[:40]), Frame(b"OK")]


def test_exactly_the_limit_is_accepted() -> None:
    assert decode(frame(b"z" * 40), limit=40) == [Frame(b"z" * 40)]
    assert decode(frame(b"z" * 41), limit=40) == [ProtocolError("oversize", 41, b"z" * 40)]


def test_oversize_is_reported_before_the_end_and_not_buffered() -> None:
    decoder = FrameDecoder(100, head_bytes=10)
    assert decoder.feed(b"\x0b" + b"a" * 60) == []
    events = decoder.feed(b"b" * 60)
    assert events == [ProtocolError("oversize", 101, b"a" * 10)]
    for _ in range(100):
        assert decoder.feed(b"c" * 10_000) == []
    assert len(decoder._buf) == 0
    assert decoder.in_frame
    assert decoder.feed(b"\x1c\r") == []
    assert not decoder.in_frame


def test_oversize_block_interrupted_by_a_start_block() -> None:
    assert decode(b"\x0b" + b"a" * 50 + frame(b"B"), limit=10) == [
        ProtocolError("oversize", 11, b"a" * 10),
        Frame(b"B"),
    ]


def test_frames_started_and_in_frame() -> None:
    decoder = FrameDecoder(100)
    assert not decoder.in_frame and decoder.frames_started == 0
    decoder.feed(b"\x0bA")
    assert decoder.in_frame and decoder.frames_started == 1
    decoder.feed(b"\x1c\r\x0b")
    assert decoder.in_frame and decoder.frames_started == 2


def test_junk_bytes_counts_the_current_run() -> None:
    decoder = FrameDecoder(100)
    decoder.feed(b"abc")
    decoder.feed(b"de")
    assert decoder.junk_bytes == 5
    assert decoder.feed(b"\x0b") == [ProtocolError("junk", 5)]
    assert decoder.junk_bytes == 0


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        FrameDecoder(0)
