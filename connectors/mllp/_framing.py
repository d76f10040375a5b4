"""MLLP framing: wrap a payload in a block, and cut a byte stream back into blocks.

Touches: nothing (pure; the socket code feeds it chunks).

HL7 v2 MLLP release 1 (HL7 v2.5.1 Appendix C.4.3): a block is
``<SB> payload <EB><CR>`` with SB = 0x0B, EB = 0x1C, CR = 0x0D. The payload
never holds SB or EB, so :class:`FrameDecoder` resynchronises on them:

- bytes outside a block are junk: discarded up to the next SB, reported once
  per run (runs of CR, LF, space or tab only are a common sender quirk and
  dropped silently);
- a block whose payload passes ``max_message_bytes`` is reported as oversize
  the moment the limit is passed, keeping only its first bytes; the rest is
  discarded up to the next EB (or SB);
- an SB inside a block abandons the block (``unterminated``) and starts a new one;
- EB not followed by CR ends the block as ``bad_end``;
- ``SB EB CR`` is an ``empty`` block.

Every report is the same whatever the chunking of the stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CR",
    "EB",
    "SB",
    "Frame",
    "FrameDecoder",
    "FrameEvent",
    "ProtocolError",
    "ProtocolErrorKind",
    "frame",
]

SB = b"\x0b"
EB = b"\x1c"
CR = b"\x0d"
_SB = SB[0]
_EB = EB[0]
_CR = CR[0]
_WHITESPACE = b" \t\r\n"

DEFAULT_HEAD_BYTES = 64 * 1024

ProtocolErrorKind = Literal["junk", "oversize", "empty", "bad_end", "unterminated"]


def frame(payload: bytes) -> bytes:
    """``payload`` wrapped in an MLLP block (the payload is not checked)."""
    return SB + payload + EB + CR


@dataclass(frozen=True, slots=True)
class Frame:
    """A complete block; ``payload`` is the bytes between SB and EB CR."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """A framing problem.

    ``size`` is the number of bytes concerned (junk run length, payload
    length so far); ``data`` is what was kept of the block: its payload for
    ``bad_end`` and ``unterminated``, its first ``head_bytes`` for
    ``oversize``, empty for ``junk`` and ``empty``.
    """

    kind: ProtocolErrorKind
    size: int = 0
    data: bytes = b""


FrameEvent = Frame | ProtocolError

_OUTSIDE = 0
_IN_FRAME = 1
_DISCARD = 2


class FrameDecoder:
    """Incremental MLLP decoder: :meth:`feed` chunks, get :data:`FrameEvent` s.

    Holds at most ``max_message_bytes`` of one payload. Call :meth:`eof` when
    the stream ends to learn about a block left open.
    """

    __slots__ = (
        "_buf",
        "_head_bytes",
        "_junk",
        "_junk_ws_only",
        "_max",
        "_pending_eb",
        "_state",
        "frames_started",
    )

    def __init__(self, max_message_bytes: int, *, head_bytes: int = DEFAULT_HEAD_BYTES) -> None:
        if max_message_bytes <= 0:
            raise ValueError("max_message_bytes must be positive")
        self._max = max_message_bytes
        self._head_bytes = min(head_bytes, max_message_bytes)
        self._buf = bytearray()
        self._state = _OUTSIDE
        self._pending_eb = False
        self._junk = 0
        self._junk_ws_only = True
        self.frames_started = 0
        """How many SB were seen: lets a caller time each block."""

    @property
    def in_frame(self) -> bool:
        """A block has started and not ended (including an oversize one being discarded)."""
        return self._state != _OUTSIDE

    @property
    def junk_bytes(self) -> int:
        """Length of the current run of bytes outside any block."""
        return self._junk

    def feed(self, data: bytes) -> list[FrameEvent]:
        """Consume ``data``; return the events it completes, in stream order."""
        events: list[FrameEvent] = []
        i = 0
        n = len(data)
        while i < n:
            if self._pending_eb:
                # The previous chunk ended on EB: this byte decides.
                self._pending_eb = False
                if data[i] == _CR:
                    self._end_block(events, good=True)
                    i += 1
                else:
                    self._end_block(events, good=False)
                continue
            if self._state == _OUTSIDE:
                i = self._feed_outside(data, i, events)
            else:
                i = self._feed_inside(data, i, events)
        return events

    def eof(self) -> list[FrameEvent]:
        """The stream ended: report a pending junk run or an open block, and reset."""
        events: list[FrameEvent] = []
        if self._pending_eb:
            self._pending_eb = False
            self._end_block(events, good=False)
        if self._state == _IN_FRAME:
            events.append(ProtocolError("unterminated", len(self._buf), bytes(self._buf)))
        self._flush_junk(events)
        self._buf = bytearray()
        self._state = _OUTSIDE
        return events

    # -- states -------------------------------------------------------------

    def _feed_outside(self, data: bytes, i: int, events: list[FrameEvent]) -> int:
        j = data.find(SB, i)
        end = len(data) if j < 0 else j
        if end > i:
            self._junk += end - i
            if self._junk_ws_only and data[i:end].strip(_WHITESPACE):
                self._junk_ws_only = False
        if j < 0:
            return end
        self._flush_junk(events)
        self._start_block()
        return j + 1

    def _feed_inside(self, data: bytes, i: int, events: list[FrameEvent]) -> int:
        n = len(data)
        e = data.find(EB, i)
        s = data.find(SB, i, e if e >= 0 else n)
        stop = s if s >= 0 else (e if e >= 0 else n)
        if self._state == _IN_FRAME:
            if len(self._buf) + (stop - i) > self._max:
                room = self._head_bytes - len(self._buf)
                if room > 0:
                    self._buf += data[i : i + room]
                events.append(
                    ProtocolError("oversize", self._max + 1, bytes(self._buf[: self._head_bytes]))
                )
                self._buf = bytearray()
                self._state = _DISCARD
            else:
                self._buf += data[i:stop]
        if stop == n:
            return n
        if s >= 0:
            # SB inside a block: the sender gave up on it and starts again.
            if self._state == _IN_FRAME:
                events.append(ProtocolError("unterminated", len(self._buf), bytes(self._buf)))
            self._start_block()
            return s + 1
        # EB: the next byte must be CR.
        if e + 1 == n:
            self._pending_eb = True
            return n
        if data[e + 1] == _CR:
            self._end_block(events, good=True)
            return e + 2
        self._end_block(events, good=False)
        return e + 1

    # -- transitions --------------------------------------------------------

    def _start_block(self) -> None:
        self._buf = bytearray()
        self._state = _IN_FRAME
        self.frames_started += 1

    def _end_block(self, events: list[FrameEvent], *, good: bool) -> None:
        if self._state == _IN_FRAME:
            payload = bytes(self._buf)
            if not good:
                events.append(ProtocolError("bad_end", len(payload), payload))
            elif payload:
                events.append(Frame(payload))
            else:
                events.append(ProtocolError("empty"))
        # _DISCARD: the oversize block was reported when it passed the limit.
        self._buf = bytearray()
        self._state = _OUTSIDE

    def _flush_junk(self, events: list[FrameEvent]) -> None:
        if self._junk and not self._junk_ws_only:
            events.append(ProtocolError("junk", self._junk))
        self._junk = 0
        self._junk_ws_only = True
