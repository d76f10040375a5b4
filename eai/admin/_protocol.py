"""The admin socket's framing: one JSON object per frame, after its length (4 bytes, big-endian).

Touches: nothing (encodes and decodes; the socket reads are the caller's).
"""

from __future__ import annotations

import json
import struct
from typing import Any

__all__ = [
    "HEADER_SIZE",
    "MAX_ANSWER",
    "MAX_REQUEST",
    "ProtocolError",
    "decode",
    "encode",
    "frame_length",
]

_HEADER = struct.Struct(">I")
HEADER_SIZE = _HEADER.size
MAX_REQUEST = 64 * 1024
# An answer carries a payload (base64): a CDA with embedded images can be large.
MAX_ANSWER = 512 * 1024 * 1024


class ProtocolError(ValueError):
    """A frame that is not a length-prefixed JSON object within the size limit."""


def encode(obj: dict[str, Any]) -> bytes:
    body = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return _HEADER.pack(len(body)) + body


def frame_length(header: bytes, limit: int) -> int:
    """The body length announced by ``header``; refuses one over ``limit``."""
    (length,) = _HEADER.unpack(header)
    if length > limit:
        raise ProtocolError(f"frame of {length} bytes is over the {limit}-byte limit")
    return int(length)


def decode(body: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError("a frame is one JSON object in UTF-8") from exc
    if not isinstance(obj, dict):
        raise ProtocolError("a frame is one JSON object in UTF-8")
    return obj
