"""A small MLLP client for ``eai send``: send messages over one connection, collect the ACKs.

Touches: network (one outbound connection).

Not the destination: no pool, no retry, no MSA-2 check beyond reporting it.
Messages are sent one after the other, each waiting for its ACK.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence

from connectors.mllp._ack import AckError, AckSummary, read_ack_frame, summarise_ack
from connectors.mllp._framing import FrameDecoder, frame
from eai.errors import InputError, TransientDeliveryError
from eai.hl7 import normalise_segment_separators

__all__ = ["AckSummary", "send_messages", "split_file"]

MAX_ACK_BYTES = 1024 * 1024
_BOM = b"\xef\xbb\xbf"


def split_file(data: bytes) -> list[bytes]:
    """Split a file holding one or more messages, each starting at a line beginning with ``MSH``.

    Lines may end with ``\\r``, ``\\n`` or ``\\r\\n``; blank lines are dropped; each
    message comes back with ``\\r``-terminated segments. A UTF-8 byte order mark
    is skipped. Raises InputError when non-blank lines come before the first MSH.
    """
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    messages: list[list[bytes]] = []
    for line in data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n"):
        if not line.strip(b" \t"):
            continue
        if line.startswith(b"MSH"):
            messages.append([line])
        elif messages:
            messages[-1].append(line)
        else:
            raise InputError("the file does not start with an MSH segment", "100")
    return [b"\r".join(lines) + b"\r" for lines in messages]


async def send_messages(
    host: str,
    port: int,
    payloads: Sequence[bytes],
    *,
    timeout: float = 30.0,
    tls: ssl.SSLContext | None = None,
) -> list[AckSummary]:
    """Send ``payloads`` in order over one connection; return one :class:`AckSummary` each.

    ``timeout`` bounds the connection and each ACK. Raises
    TransientDeliveryError when the peer cannot be reached, closes the
    connection, breaks the MLLP framing, or is too slow; an answer that is
    framed but is no ACK gives an :class:`AckSummary` with an empty ``code``.
    """
    address = f"{host}:{port}"
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port, ssl=tls)
    except TimeoutError as exc:
        raise TransientDeliveryError(f"{address}: no connection within {timeout:g} s") from exc
    except OSError as exc:
        raise TransientDeliveryError(f"{address}: cannot connect: {exc}") from exc
    decoder = FrameDecoder(MAX_ACK_BYTES)
    answers: list[AckSummary] = []
    try:
        for number, payload in enumerate(payloads, start=1):
            where = f"{address}: message {number} of {len(payloads)}"
            try:
                async with asyncio.timeout(timeout):
                    writer.write(frame(normalise_segment_separators(payload)))
                    await writer.drain()
                    raw, _ = await read_ack_frame(reader, decoder)
                answers.append(_summary(raw))
            except TimeoutError as exc:
                raise TransientDeliveryError(f"{where}: no ACK within {timeout:g} s") from exc
            except AckError as exc:
                raise TransientDeliveryError(f"{where}: {exc}") from exc
            except OSError as exc:
                raise TransientDeliveryError(f"{where}: connection failed: {exc}") from exc
    finally:
        writer.close()
        try:
            async with asyncio.timeout(1):
                await writer.wait_closed()
        except (OSError, TimeoutError):
            pass
    return answers


def _summary(raw: bytes) -> AckSummary:
    """The ACK's summary; an answer that is no ACK gets an empty code (and keeps ``raw``)."""
    try:
        return summarise_ack(raw)
    except AckError as exc:
        return AckSummary("", "", str(exc), raw)
