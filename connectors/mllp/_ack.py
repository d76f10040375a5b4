"""Read one acknowledgement block from an MLLP connection and summarise its MSA and ERR.

Touches: network (reads from the stream it is given).

Shared by the destination and the ``eai send`` client. HL7 v2.5 section 2.14.1:
MSA-1 acknowledgement code, MSA-2 control id of the acknowledged message,
MSA-3 text; ERR-8 (v2.5 user message) or ERR-3.2 / ERR-1.4.2 (older layouts)
explain a refusal.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from connectors.mllp._framing import Frame, FrameDecoder
from eai.hl7 import parse

__all__ = ["ACK_CODES", "AckError", "AckSummary", "read_ack_frame", "summarise_ack"]

ACK_CODES = frozenset({"AA", "AE", "AR", "CA", "CE", "CR"})
_TEXT_MAX = 200
_READ_SIZE = 64 * 1024


class AckError(Exception):
    """No usable acknowledgement: the connection must not be reused."""


@dataclass(frozen=True, slots=True)
class AckSummary:
    """What a peer answered: MSA-1 ``code``, MSA-2 ``control_id``, a short ``text``, ``raw``."""

    code: str
    control_id: str
    text: str
    raw: bytes

    @property
    def accepted(self) -> bool:
        return self.code in ("AA", "CA")


async def read_ack_frame(reader: asyncio.StreamReader, decoder: FrameDecoder) -> tuple[bytes, bool]:
    """Read until one complete block; return its payload and whether more bytes followed it.

    Junk between blocks is skipped (a later read would skip it too); any other
    framing error, or the end of the stream, raises :class:`AckError`. The
    caller bounds the wait.
    """
    while True:
        data = await reader.read(_READ_SIZE)
        if not data:
            raise AckError("connection closed by the peer before the ACK")
        found: bytes | None = None
        extra = False
        for event in decoder.feed(data):
            if isinstance(event, Frame):
                if found is None:
                    found = event.payload
                else:
                    extra = True
            elif event.kind != "junk":
                raise AckError(f"invalid MLLP framing in the answer ({event.kind})")
        if found is not None:
            return found, extra or decoder.in_frame


def summarise_ack(raw: bytes) -> AckSummary:
    """MSA-1, MSA-2 and a short text of ``raw``; :class:`AckError` when it is no ACK."""
    try:
        message = parse(raw)
        msa = message.segment("MSA")
        if msa is None:
            raise AckError("unparseable ACK (no MSA-1 acknowledgement code)")
        code = msa.get(1).strip().upper()
        control_id = msa.get(2).strip()
        text = msa.get(3)
        err = None if text else message.segment("ERR")
        if err is not None:  # ERR-8, ERR-3.2, ERR-1.4.2: the first one valued
            text = err.get(8) or err.get(3, 1, 2) or err.get(1, 1, 4, 2)
        text = text.strip()
    except AckError:
        raise
    except Exception as exc:  # noqa: BLE001 - anything unreadable is "no ACK"
        raise AckError(f"unparseable ACK ({type(exc).__name__})") from exc
    if code not in ACK_CODES:
        raise AckError("unparseable ACK (no MSA-1 acknowledgement code)")
    if text and not text.isprintable():
        text = _printable(text)
    return AckSummary(code, control_id, text[:_TEXT_MAX], raw)


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else " " for c in text)
