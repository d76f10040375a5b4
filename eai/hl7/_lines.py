"""Split an HL7 v2 payload into its segments, whatever the line ending.

Touches: nothing.

HL7 v2.5 chapter 2 ends each segment with a carriage return; senders also use
``\\n`` or ``\\r\\n``. All three are accepted. Blank segments (empty, or only
spaces/tabs) carry nothing and are dropped, wherever they are; trailing ones
are the common case (a file saved with a final newline).
"""

from __future__ import annotations

from eai.errors import InputError

__all__ = ["BLANK", "normalise_segment_separators", "segment_spans"]

BLANK = " \t\x0b\x0c"
_BLANK_BYTES = BLANK.encode("ascii")


def normalise_segment_separators(data: bytes) -> bytes:
    """Return ``data`` with ``\\r\\n`` and ``\\n`` turned into ``\\r`` and blank segments dropped.

    Every remaining segment, the last included, ends with ``\\r``; a payload with
    no segment gives ``b""``.
    """
    if b"\n" in data:
        data = data.replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    kept = [seg for seg in data.split(b"\r") if seg.strip(_BLANK_BYTES)]
    return b"\r".join(kept) + b"\r" if kept else b""


def segment_spans(text: str, field_sep: str) -> tuple[str, list[tuple[int, int]]]:
    """Return ``text`` with ``\\r`` line ends and the (start, end) of each non-blank segment.

    Checks every segment name without copying the segments: a name is 3
    uppercase ASCII letters or digits (Z-segments included), followed by the
    field separator or the end of the segment; anything else is an InputError
    with table 0357 code 100. The reason gives the line number, never the
    content (it may hold patient data).
    """
    if "\n" in text:
        if "\r" in text:  # checked first: a str search for "\r\n" is slow on non-ASCII text
            text = text.replace("\r\n", "\r")
        text = text.replace("\n", "\r")
    spans: list[tuple[int, int]] = []
    size = len(text)
    pos = number = 0
    while pos < size:
        end = text.find("\r", pos)
        if end < 0:
            end = size
        number += 1
        if (end - pos == 3 or (end - pos > 3 and text[pos + 3] == field_sep)) and _valid_name(
            text[pos : pos + 3]
        ):
            spans.append((pos, end))
        elif text[pos:end].strip(BLANK):
            raise InputError(
                f"line {number} does not start with a segment name (3 uppercase letters or "
                "digits followed by the field separator)",
                "100",
            )
        pos = end + 1
    return text, spans


def _valid_name(name: str) -> bool:
    return len(name) == 3 and name.isascii() and name.isalnum() and name.upper() == name
