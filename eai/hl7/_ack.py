"""Build the HL7 v2 acknowledgement (MSH, MSA, optional ERR) answered to a received message.

Touches: nothing.

Layout follows HL7 v2.5 chapter 2 (ACK message, MSA and ERR segments). An ACK never
carries patient data: only header values, the caller's text and the error's
reason (whose wording the engine controls) go in, all escaped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache

from eai.errors import InputError
from eai.hl7._escape import escape
from eai.hl7._header import MessageHeader
from eai.hl7._path import parse_path

__all__ = ["ACK_CODES", "TABLE_0357", "build_ack"]

ACK_CODES = frozenset({"AA", "AE", "AR", "CA", "CE", "CR"})

# HL7 table 0357 "Message error condition codes".
TABLE_0357: dict[str, str] = {
    "0": "Message accepted",
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "104": "Value too long",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "202": "Unsupported processing id",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "205": "Duplicate key identifier",
    "206": "Application record locked",
    "207": "Application internal error",
}


def build_ack(
    header: MessageHeader | None,
    code: str,
    *,
    control_id: str,
    text: str = "",
    error: InputError | None = None,
    fallback_control_id: str = "",
    now: datetime | None = None,
) -> bytes:
    """Return the acknowledgement of the message described by ``header``, encoded.

    ``header`` is None when the message could not be read: the ACK then uses
    ``|^~\\&``, UTF-8, MSH-11 ``P``, MSH-12 ``2.5`` and MSA-2 =
    ``fallback_control_id`` (see ``guess_control_id``). ``control_id`` is the
    ACK's own MSH-10. ``error`` adds an ERR segment: ERR-2 from its location
    when that is a path, ERR-3 its table 0357 code (an unknown code is sent as
    207), ERR-4 ``E``, ERR-8 its reason. ``now`` (local time) is for tests.
    Each segment ends with ``\\r``.
    """
    if code not in ACK_CODES:
        raise ValueError(f"acknowledgement code must be one of {sorted(ACK_CODES)}, got {code!r}")
    key = _header_key(header)
    fs, enc = key[0], key[1]

    def esc(value: str) -> str:
        return escape(value, enc, fs)

    comp = enc[0]
    stamp = _now_stamp() if now is None else now.strftime("%Y%m%d%H%M%S")
    before, after = _msh_around(key)
    msh = fs.join((before, stamp, "", _message_type(header, comp, esc), esc(control_id), after))
    acked_id = header.control_id if header else fallback_control_id
    msa = ["MSA", code, esc(acked_id)]
    if text:
        msa.append(esc(text))
    segments = [msh, fs.join(msa)]
    if error is not None:
        segments.append(fs.join(_err(error, comp, esc)))
    codec = header.codec if header else "utf-8"
    return ("\r".join(segments) + "\r").encode(codec, "replace")


_HeaderKey = tuple[str, str, str, str, str, str, str, str, str]
"""What an ACK's MSH takes from the acknowledged message's header, but its control id
and message type: the same for every message of one sender's interface."""


def _header_key(header: MessageHeader | None) -> _HeaderKey:
    if header is None:
        return ("|", "^~\\&", "", "", "", "", "P", "2.5", "")
    return (
        header.field_sep,
        header.encoding_chars,
        header.receiving_application,
        header.receiving_facility,
        header.sending_application,
        header.sending_facility,
        header.processing_id or "P",
        header.version or "2.5",
        header.charset,
    )


@lru_cache(maxsize=256)
def _msh_around(key: _HeaderKey) -> tuple[str, str]:
    """The ACK's MSH-1 to MSH-6, and MSH-11 on, escaped (cached: one interface's ACKs
    share them): the time, MSH-9 and MSH-10 go between."""
    fs, enc, r_app, r_facility, s_app, s_facility, processing, version, charset = key

    def esc(value: str) -> str:
        return escape(value, enc, fs)

    before = fs.join(("MSH", enc, esc(r_app), esc(r_facility), esc(s_app), esc(s_facility)))
    after = [esc(processing), esc(version)]
    if charset:
        after += ["", "", "", "", "", charset]  # as sent: MSH-18 is read raw
    return before, fs.join(after)


_stamp: tuple[int, str] = (-1, "")


def _now_stamp() -> str:
    """The local time to the second as MSH-7 gives it (made once a second)."""
    global _stamp
    second = int(time.time())
    cached = _stamp
    if cached[0] != second:
        cached = _stamp = (second, datetime.fromtimestamp(second).strftime("%Y%m%d%H%M%S"))
    return cached[1]


def _message_type(header: MessageHeader | None, comp: str, esc: Callable[[str], str]) -> str:
    """MSH-9 of the ACK: ``ACK^<trigger>^ACK``, or ``ACK`` when the message had no trigger."""
    if header is None or "^" not in header.message_type:
        return "ACK"
    trigger = header.message_type.split("^", 2)[1]
    return comp.join(("ACK", esc(trigger), "ACK"))


def _err(error: InputError, comp: str, esc: Callable[[str], str]) -> list[str]:
    """ERR in its v2.5 layout: ERR-2 location, ERR-3 code, ERR-4 severity, ERR-8 user message."""
    code = error.hl7_code if error.hl7_code in TABLE_0357 else "207"
    return [
        "ERR",
        "",
        _location(error.location, comp),
        comp.join((code, TABLE_0357[code], "HL70357")),
        "E",
        "",
        "",
        "",
        esc(error.reason),
    ]


def _location(location: str, comp: str) -> str:
    """ERR-2 (ERL) from a path such as ``MSH-9``: ``MSH^1^9``; "" when it is not a path."""
    try:
        path = parse_path(location)
    except ValueError:
        return ""
    parts = [path.segment, str(path.occurrence), str(path.field)]
    if path.repetition or path.component:
        parts.append(str(path.repetition or 1))
    if path.component:
        parts.append(str(path.component))
    if path.subcomponent:
        parts.append(str(path.subcomponent))
    return comp.join(parts)
