"""The HTTP intake listener's answers: journaling a posted document and writing JSON replies.

Touches: DB (through ``ingest``), network (writes answers on a connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import ssl
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import h11

from connectors._cda_intake import Verdict, examine, journal_entry
from eai.cda_schema import CdaSchema
from eai.errors import StoreError
from eai.net import close_stream, run_blocking
from eai.registry import Ingest

__all__ = ["READ_CHUNK", "Answer", "journal_and_answer", "linger", "refuse", "send", "too_large"]

# The listener's logger: operators and tests filter on connectors.http_in.
log = logging.getLogger("connectors.http_in")

READ_CHUNK = 64 * 1024
_LINGER_SECONDS = 1.0  # after an early answer: how long, and how much, to read and discard
_LINGER_BYTES = 1024 * 1024
_SERVER = b"eai"


@dataclass(slots=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    close: bool = False
    head: bool = False  # answering a HEAD request: headers only


async def journal_and_answer(
    name: str, body: bytes, peer: str, schema: CdaSchema | None, ingest: Ingest
) -> Answer:
    """Examines, journals, answers."""
    verdict: Verdict = await run_blocking(examine, body, schema)
    entry = journal_entry(name, body, verdict, peer)
    try:
        result = await ingest(entry)
    except Exception as exc:  # noqa: BLE001 - fail closed: never a 2xx without a commit
        if not isinstance(exc, StoreError):
            log.exception("listener %s: journaling failed unexpectedly", name)
            return Answer(
                500,
                {"error": "internal error; send the document again (a resend is recognised)"},
            )
        log.error(
            "listener %s: journal unavailable for a %d-byte document from %s: %s",
            name,
            len(body),
            peer,
            exc,
        )
        if verdict.accepted:
            return Answer(
                503,
                {"error": "the journal cannot be written now; retry later"},
                headers=[(b"retry-after", b"5")],
            )
        return _rejection(verdict, None)
    log.info(
        "listener %s: %d bytes from %s -> message %d%s, %s",
        name,
        len(body),
        peer,
        result.message_id,
        " (already journaled)" if result.duplicate else "",
        verdict.outcome,
    )
    if not verdict.accepted:
        return _rejection(verdict, result.message_id)
    answer: dict[str, Any] = {"message_id": result.message_id}
    if result.duplicate:
        answer["duplicate"] = True
    return Answer(202, answer)


async def send(
    conn: h11.Connection,
    writer: asyncio.StreamWriter,
    answer: Answer,
    *,
    closing: bool,
    timeout: float,
) -> None:
    """Writes ``answer`` as JSON (``Connection: close`` when it or the listener closes)."""
    body = json.dumps(answer.body, ensure_ascii=False).encode("utf-8")
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"date", email.utils.formatdate(usegmt=True).encode()),
        (b"server", _SERVER),
        (b"cache-control", b"no-store"),
        *answer.headers,
    ]
    if answer.close or closing:
        headers.append((b"connection", b"close"))
    response = h11.Response(
        status_code=answer.status, headers=headers, reason=HTTPStatus(answer.status).phrase
    )
    data = conn.send(response) or b""
    if not answer.head:
        data += conn.send(h11.Data(data=body)) or b""
    data += conn.send(h11.EndOfMessage()) or b""
    writer.write(data)
    async with asyncio.timeout(timeout):
        await writer.drain()


def _rejection(verdict: Verdict, message_id: int | None) -> Answer:
    body: dict[str, Any] = {"error": verdict.reason}
    if verdict.issues:
        body["errors"] = [{"line": i.line, "message": i.message} for i in verdict.issues]
    if message_id is not None:
        body["message_id"] = message_id
    return Answer(400 if verdict.outcome == "bad_xml" else 422, body)


def too_large(cap: int) -> dict[str, Any]:
    return {"error": f"body larger than max_body_bytes ({cap} bytes)"}


async def linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """After answering a request not read to its end: stop writing, discard what the
    client is still sending for a moment (bounded), so that closing with unread bytes
    does not reset the connection before the client has read the answer."""
    if writer.can_write_eof():
        with contextlib.suppress(OSError):
            writer.write_eof()
    with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
        async with asyncio.timeout(_LINGER_SECONDS):
            discarded = 0
            while discarded < _LINGER_BYTES:
                data = await reader.read(READ_CHUNK)
                if not data:
                    return
                discarded += len(data)


async def refuse(writer: asyncio.StreamWriter) -> None:
    """Answers 503 (too many connections) without reading, then closes."""
    body = b'{"error": "too many connections; retry later"}'
    writer.write(
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
        b"retry-after: 5\r\nconnection: close\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
        async with asyncio.timeout(5):
            await writer.drain()
    await close_stream(writer)
