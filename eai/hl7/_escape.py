"""Resolve and produce HL7 v2 escape sequences (HL7 v2.5 section 2.7) in a leaf value.

Touches: nothing.

Resolved by ``unescape``: ``\\F\\`` field, ``\\S\\`` component, ``\\T\\`` subcomponent,
``\\R\\`` repetition, ``\\E\\`` escape, ``\\P\\`` truncation (v2.7, only with a 5th
encoding character), ``\\Xhh..\\`` bytes in the message codec, ``\\.br\\`` line break.
Anything else (``\\H\\``, ``\\N\\``, ``\\C..\\``, ``\\Z..\\``, other formatting
commands, an unterminated sequence, bad hex) is kept literally.
"""

from __future__ import annotations

import binascii
from functools import lru_cache

__all__ = ["escape", "unescape"]


def unescape(text: str, encoding_chars: str, field_sep: str, codec: str = "utf-8") -> str:
    """Return ``text`` with its escape sequences resolved (see module docstring)."""
    if len(encoding_chars) < 3:
        return text
    esc = encoding_chars[2]
    if esc not in text:
        return text
    named = {
        "F": field_sep,
        "S": encoding_chars[0],
        "R": encoding_chars[1],
        "E": esc,
        ".br": "\n",
    }
    if len(encoding_chars) > 3:
        named["T"] = encoding_chars[3]
    if len(encoding_chars) > 4:
        named["P"] = encoding_chars[4]
    out: list[str] = []
    pos = 0
    size = len(text)
    while pos < size:
        start = text.find(esc, pos)
        if start < 0:
            break
        end = text.find(esc, start + 1)
        if end < 0:
            break
        out.append(text[pos:start])
        body = text[start + 1 : end]
        value = named.get(body)
        if value is None and body[:1] == "X":
            value = _hex(body[1:], codec)
        out.append(text[start : end + 1] if value is None else value)
        pos = end + 1
    out.append(text[pos:])
    return "".join(out)


def _hex(digits: str, codec: str) -> str | None:
    """Decode the hex payload of an ``\\X..\\`` sequence, or None when it is not valid."""
    if not digits or len(digits) % 2:
        return None
    try:
        return binascii.unhexlify(digits).decode(codec)
    except (binascii.Error, ValueError, LookupError):
        return None


def escape(text: str, encoding_chars: str, field_sep: str) -> str:
    """Return ``text`` safe to place in one leaf: separators and control characters escaped.

    Line breaks become ``\\.br\\``; other control characters (which could break
    the segment or the MLLP frame) become ``\\Xhh\\``.
    """
    return text.replace("\r\n", "\n").translate(_escape_table(encoding_chars, field_sep))


@lru_cache(maxsize=32)
def _escape_table(encoding_chars: str, field_sep: str) -> dict[int, str]:
    """The ``str.translate`` table for one set of separators (cached: built once per sender)."""
    esc = encoding_chars[2]
    table: dict[int, str] = {c: f"{esc}X{c:02X}{esc}" for c in range(0x20)}
    table[0x7F] = f"{esc}X7F{esc}"
    table[ord("\n")] = f"{esc}.br{esc}"
    table[ord("\r")] = f"{esc}.br{esc}"
    table[ord(esc)] = f"{esc}E{esc}"
    table[ord(field_sep)] = f"{esc}F{esc}"
    table[ord(encoding_chars[0])] = f"{esc}S{esc}"
    table[ord(encoding_chars[1])] = f"{esc}R{esc}"
    if len(encoding_chars) > 3:
        table[ord(encoding_chars[3])] = f"{esc}T{esc}"
    if len(encoding_chars) > 4:
        table[ord(encoding_chars[4])] = f"{esc}P{esc}"
    return table
