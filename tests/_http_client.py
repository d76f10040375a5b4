"""Test client for the CDA HTTP listener: start it on a fake journal, POST (http.client), raw bytes.

Touches: network (127.0.0.1).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from connectors.http_in import HttpListener, HttpListenerConfig
from tests._listeners import FakeJournal
from tests._paths import CDA

TSH = CDA / "BIO-CR-BIO_2024.01_TSH_1.xml"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]


def http_config(**fields: Any) -> HttpListenerConfig:
    data: dict[str, Any] = {"name": "cda-http", "bind": "127.0.0.1:0"}
    data.update(fields)
    return HttpListenerConfig.model_validate(data)


@asynccontextmanager
async def serving(journal: FakeJournal, **fields: Any) -> AsyncIterator[HttpListener]:
    listener = HttpListener(http_config(**fields), journal)
    await listener.start()
    try:
        yield listener
    finally:
        await listener.stop(2.0)


def request(
    port: int,
    body: Any,
    *,
    method: str = "POST",
    path: str = "/cda",
    content_type: str | None = "application/xml",
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> Reply:
    if context is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    try:
        sent = dict(headers or {})
        if content_type is not None:
            sent["Content-Type"] = content_type
        chunked = body is not None and not isinstance(body, bytes)
        conn.request(method, path, body=body, headers=sent, encode_chunked=chunked)
        response = conn.getresponse()
        data = response.read()
        return Reply(
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            json.loads(data) if data else {},
        )
    finally:
        conn.close()


async def post(port: int, body: bytes | None, **kwargs: Any) -> Reply:
    return await asyncio.to_thread(request, port, body, **kwargs)


async def raw(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Sends ``data`` and returns everything until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(timeout):
            return await reader.read(-1)
    finally:
        writer.close()
        await writer.wait_closed()


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])
