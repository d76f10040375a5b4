"""A FHIR server stand-in that answers a transaction at once, to measure the engine alone.

Touches: network (one 127.0.0.1 port).

Run: ``python bench/fhir_fast_peer.py [PORT]``; prints ``listening <port> <port>`` once
bound (the same line as ``tests/_fhir_peer/server.mjs``, whose control port is here the
same port). HTTP/1.1 with keep-alive (h11), one asyncio task per connection.

``POST /fhir``: the body must be a FHIR transaction (or batch) Bundle as the ``fhir``
destination sends it: ``content-type: application/fhir+json``, ``resourceType``
Bundle, ``type`` transaction/batch, every entry with a resource (``resourceType``), a
``request`` (method POST or PUT, url), a ``urn:uuid:`` fullUrl on POST entries, and
the Patient as a conditional create (``ifNoneExist``). Answer: 200 and a
``transaction-response`` (``batch-response``) Bundle, one ``201 Created`` entry per
entry with a ``location``; a request that fails a check gets 400 and an
OperationOutcome naming it (and counts as refused in the log). Nothing is stored:
the time is the engine's.

``GET /_log``: the requests seen, as ``server.mjs`` gives them (method, path, id =
X-Correlation-Id, at, done, status).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import h11

_UUID = "urn:uuid:"
_JSON = [(b"content-type", b"application/fhir+json")]
_seen: list[dict[str, Any]] = []
_counter = 0


def _problem(bundle: Any) -> str:
    """Why ``bundle`` is not a transaction the destination should send ("" when it is)."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        return "not a Bundle"
    if bundle.get("type") not in ("transaction", "batch"):
        return "Bundle.type is not transaction or batch"
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries:
        return "Bundle.entry missing"
    patients = 0
    for index, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        request = entry.get("request") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            return f"Bundle.entry[{index}].resource missing"
        if not isinstance(request, dict) or request.get("method") not in ("POST", "PUT"):
            return f"Bundle.entry[{index}].request.method not POST or PUT"
        if not isinstance(request.get("url"), str) or not request["url"]:
            return f"Bundle.entry[{index}].request.url missing"
        if request["method"] == "POST" and not str(entry.get("fullUrl", "")).startswith(_UUID):
            return f"Bundle.entry[{index}].fullUrl is not a urn:uuid"
        if resource["resourceType"] == "Patient":
            patients += 1
            if not request.get("ifNoneExist"):
                return f"Bundle.entry[{index}]: the Patient is not a conditional create"
    return "" if patients == 1 else f"{patients} Patient entries (one expected)"


def _answer(bundle: dict[str, Any]) -> dict[str, Any]:
    global _counter
    entries = []
    for entry in bundle["entry"]:
        _counter += 1
        rtype = entry["resource"]["resourceType"]
        entries.append(
            {"response": {"status": "201 Created", "location": f"{rtype}/{_counter}/_history/1"}}
        )
    kind = "batch-response" if bundle["type"] == "batch" else "transaction-response"
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


def _outcome(diagnostics: str) -> dict[str, Any]:
    issue = {"severity": "error", "code": "invalid", "diagnostics": diagnostics}
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def _handle(request: h11.Request, body: bytes) -> tuple[int, Any]:
    path = request.target.decode("latin-1").split("?", 1)[0]
    headers = {k.decode().lower(): v.decode("latin-1") for k, v in request.headers}
    if request.method == b"GET" and path == "/_log":
        return 200, _seen
    if path != "/fhir":
        return 404, _outcome("no such path")
    row: dict[str, Any] = {
        "method": request.method.decode(),
        "path": path,
        "id": headers.get("x-correlation-id", ""),
        "auth": "",
        "at": time.time(),
        "status": 0,
    }
    _seen.append(row)
    status, answer = 200, None
    if request.method != b"POST":
        status, answer = 405, _outcome("POST a transaction Bundle")
    elif not headers.get("content-type", "").startswith("application/fhir+json"):
        status, answer = 415, _outcome("content-type application/fhir+json expected")
    else:
        try:
            bundle = json.loads(body)
        except ValueError:
            bundle = None
        why = _problem(bundle)
        status, answer = (400, _outcome(why)) if why else (200, _answer(bundle))
    row["status"], row["done"] = status, time.time()
    return status, answer


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(262144)
                conn.receive_data(data)
                if not data:
                    return
                continue
            if not isinstance(event, h11.Request):
                return
            chunks = []
            while True:
                part = conn.next_event()
                if part is h11.NEED_DATA:
                    data = await reader.read(262144)
                    if not data:
                        return
                    conn.receive_data(data)
                elif isinstance(part, h11.Data):
                    chunks.append(bytes(part.data))
                elif isinstance(part, h11.EndOfMessage):
                    break
                else:
                    return
            status, answer = _handle(event, b"".join(chunks))
            payload = json.dumps(answer, separators=(",", ":")).encode()
            headers = [*_JSON, (b"content-length", str(len(payload)).encode())]
            writer.write(conn.send(h11.Response(status_code=status, headers=headers)) or b"")
            writer.write(conn.send(h11.Data(data=payload)) or b"")
            writer.write(conn.send(h11.EndOfMessage()) or b"")
            await writer.drain()
            if conn.our_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()
    except (h11.RemoteProtocolError, ConnectionError):
        return
    finally:
        writer.close()


async def _main(port: int) -> None:
    server = await asyncio.start_server(_serve, "127.0.0.1", port)
    bound = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"listening {bound} {bound}\n")
    sys.stdout.flush()
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(_main(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
