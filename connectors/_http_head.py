"""Finds an HTTP/1.1 request head in received bytes, capped, and refuses ambiguous framing.

Touches: nothing (works on the bytes it is given).

h11 parses the head afterwards; this pass looks at the raw bytes first, for
what h11 lets through or cannot see (RFC 9112):

- the size cap holds on the bytes however they arrive: h11's
  ``max_incomplete_event_size`` only bounds a head still incomplete, so a
  head received in one read was parsed whatever its size (431);
- ``Content-Length`` together with ``Transfer-Encoding`` (§6.1: "ought to be
  handled as an error"; h11 silently prefers chunked), ``Transfer-Encoding``
  in an HTTP/1.0 request (§6.1: faulty framing), ``Content-Length`` repeated
  or given as a list, even with equal values (§6.3 lets a server reject it;
  h11 merges them), obs-fold continuation lines (§5.2; h11 unfolds them), and
  a bare CR or LF as a line end (§2.2): each is answered 400, and the
  connection closed, since where the next request starts is not known.

Transfer codings other than ``chunked`` and a repeated ``Transfer-Encoding``
are h11's (501 / 400).
"""

from __future__ import annotations

import re

__all__ = ["BadFraming", "check_head", "head_end"]

_END = re.compile(rb"\n\r?\n")
_FIELD_NAME = re.compile(rb"^([!#$%&'*+.^_`|~0-9A-Za-z-]+):")


class BadFraming(Exception):
    """A head refused before parsing: the status to answer and why (no peer bytes)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason


def head_end(buffer: bytes | bytearray, cap: int) -> int | None:
    """Length of the head at the start of ``buffer`` (blank line included), or None
    while it is incomplete. :class:`BadFraming` (431) once it is, or would be, over ``cap``."""
    match = _END.search(buffer, 0, cap + 4)
    if match is None:
        if len(buffer) > cap:
            raise BadFraming(431, f"request head larger than {cap} bytes")
        return None
    end = match.end()
    if end > cap:
        raise BadFraming(431, f"request head larger than {cap} bytes")
    return end


def check_head(head: bytes | bytearray) -> None:
    """Raises :class:`BadFraming` for the ambiguous framings the module docstring lists."""
    text = bytes(head)
    if b"\r" in text.replace(b"\r\n", b"") or b"\n" in text.replace(b"\r\n", b""):
        raise BadFraming(400, "bare CR or LF in the request head: lines end with CRLF")
    lines = text.split(b"\r\n")
    request_line, fields = lines[0], [line for line in lines[1:] if line]
    lengths = encodings = 0
    for line in fields:
        if line[:1] in (b" ", b"\t"):
            raise BadFraming(400, "obsolete line folding (obs-fold) in a header field")
        match = _FIELD_NAME.match(line)
        if match is None:
            continue  # h11 refuses it, with its own reason
        name = match.group(1).lower()
        if name == b"content-length":
            lengths += 1
            if b"," in line:
                raise BadFraming(400, "Content-Length given as a list")
        elif name == b"transfer-encoding":
            encodings += 1
    if lengths > 1:
        raise BadFraming(400, "Content-Length given more than once")
    if lengths and encodings:
        raise BadFraming(400, "both Content-Length and Transfer-Encoding: ambiguous framing")
    if encodings and request_line.rstrip().endswith(b"HTTP/1.0"):
        raise BadFraming(400, "Transfer-Encoding in an HTTP/1.0 request")
