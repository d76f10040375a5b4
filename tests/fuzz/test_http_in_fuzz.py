"""Property tests of the http listener's request handling: any bytes, any chunking.

The listener's connection handler (``HttpListener._serve``) is driven with a
scripted reader that hands over the stream in the pieces hypothesis chose, one
piece per read, and a writer that keeps what is answered; ``ingest`` is the
in-memory journal of the integration tests. Properties:

- never an exception or an ERROR log, every answer a 2xx/4xx/501 HTTP response;
- the same answers and the same journal entries however the bytes are cut;
- nothing journaled twice, nothing journaled after an answer that closed the
  connection (a refused framing hides no second request);
- a stream of proper requests gets one 202 per request, in order.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.http_in import HttpListener, HttpListenerConfig
from tests._listeners import FakeJournal

pytestmark = pytest.mark.fuzz

ANSWERS = {202, 400, 401, 404, 405, 413, 415, 422, 431, 501, 505}
DOCS = [b"<a/>", b"<ClinicalDocument xmlns='urn:hl7-org:v3'/>", b"<a>\xc3\xa9</a>", b"not xml"]


class ScriptedReader:
    """``read`` returns the next piece (cut to ``n``), then b"" forever."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = [p for p in pieces if p]
        self.reads = 0

    async def read(self, n: int = -1) -> bytes:
        self.reads += 1
        if not self.pieces:
            return b""
        piece = self.pieces.pop(0)
        if 0 < n < len(piece):
            self.pieces.insert(0, piece[n:])
            piece = piece[:n]
        return piece


@dataclass
class KeepingWriter:
    data: bytearray = field(default_factory=bytearray)
    closed: bool = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.data += data

    async def drain(self) -> None:
        await asyncio.sleep(0)

    def can_write_eof(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True

    async def wait_closed(self) -> None:
        return None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("192.0.2.1", 40000) if name == "peername" else default


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass(frozen=True)
class Outcome:
    statuses: tuple[int, ...]
    journaled: tuple[bytes, ...]
    calls: int


_STATUS_LINE = re.compile(rb"HTTP/1\.1 (\d{3}) [^\r\n]*\r\n")


def _statuses(data: bytes) -> tuple[int, ...]:
    """The status of each response in ``data`` (100 Continue skipped); checks their shape."""
    out: list[int] = []
    rest = data
    while rest:
        match = _STATUS_LINE.match(rest)
        assert match is not None, rest[:80]
        head_end = rest.index(b"\r\n\r\n") + 4
        status = int(match.group(1))
        if status == 100:
            rest = rest[head_end:]
            continue
        length = re.search(rb"\r\ncontent-length: (\d+)\r\n", rest[:head_end])
        assert length is not None
        rest = rest[head_end + int(length.group(1)) :]
        out.append(status)
    return tuple(out)


def serve(pieces: list[bytes], **fields: Any) -> Outcome:
    """Runs one connection over ``pieces``; fails on any ERROR log."""
    config = HttpListenerConfig.model_validate(
        {"name": "fuzz", "bind": "127.0.0.1:0", "validate_schema": False, **fields}
    )
    journal = FakeJournal()
    listener = HttpListener(config, journal)
    writer = KeepingWriter()
    errors = _Errors()
    logger = logging.getLogger("connectors.http_in")
    logger.addHandler(errors)
    try:

        async def run() -> None:
            async with asyncio.timeout(30):
                await listener._serve(ScriptedReader(pieces), writer, "192.0.2.1:40000")  # type: ignore[arg-type]

        asyncio.run(run())
    finally:
        logger.removeHandler(errors)
    assert not errors.records, [r.getMessage() for r in errors.records]
    assert writer.closed
    statuses = _statuses(bytes(writer.data))
    assert set(statuses) <= ANSWERS, statuses
    return Outcome(statuses, tuple(e.payload for e in journal.entries), journal.calls)


def cut(data: bytes, points: list[int]) -> list[bytes]:
    marks = sorted({p % (len(data) + 1) for p in points})
    pieces, start = [], 0
    for mark in [*marks, len(data)]:
        pieces.append(data[start:mark])
        start = max(start, mark)
    return pieces


# --- strategies ---------------------------------------------------------------------

_FRAMING = {"host", "content-length", "transfer-encoding", "connection", "content-type"}
_FRAMING |= {"expect", "authorization"}
token = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=1, max_size=12
).filter(lambda name: name.lower() not in _FRAMING)
value = st.binary(max_size=20).map(lambda b: bytes(c for c in b if c >= 0x20 and c != 0x7F))
junk_field = st.tuples(token, value).map(lambda t: t[0].encode() + b": " + t[1])
odd_field = st.sampled_from(
    [
        b"Transfer-Encoding: chunked",
        b"Transfer-Encoding: gzip, chunked",
        b"Content-Length: 3",
        b"Content-Length: 3, 3",
        b"Content-Length: -1",
        b"Content-Length: 99999999999999999999",
        b" folded: x",
        b"\tfolded",
        b"X-Bare: a\nb",
        b"X-Cr: a\rb",
        b"X-Ctl: a\x00b",
        b"X-Del: \x7f",
        b"Expect: 100-continue",
        b"Connection: close",
        b"Authorization: Bearer x",
        b"Host: other",
        b"Content-Type: text/plain",
        b": empty-name",
        b"X-Big: " + b"a" * 17000,
    ]
)


@st.composite
def request(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A request and whether it is a proper one (well-framed POST of XML to /cda)."""
    doc = draw(st.sampled_from(DOCS))
    method = draw(st.sampled_from([b"POST"] * 6 + [b"GET", b"PUT", b"HEAD"]))
    path = draw(st.sampled_from([b"/cda"] * 6 + [b"/", b"/cda?x=1", b"/other"]))
    version = draw(st.sampled_from([b"HTTP/1.1"] * 8 + [b"HTTP/1.0", b"HTTP/2.0"]))
    chunked = draw(st.booleans())
    fields = [b"Host: x", b"Content-Type: application/xml"]
    if chunked:
        fields.append(b"Transfer-Encoding: chunked")
        sizes = draw(st.lists(st.integers(1, 8), max_size=6))
        body, rest = b"", doc
        for size in sizes:
            part, rest = rest[:size], rest[size:]
            if part:
                body += f"{len(part):x}\r\n".encode() + part + b"\r\n"
        if rest:
            body += f"{len(rest):x}\r\n".encode() + rest + b"\r\n"
        body += b"0\r\n\r\n"
    else:
        fields.append(f"Content-Length: {len(doc)}".encode())
        body = doc
    fields += draw(st.lists(junk_field, max_size=4))
    odd = draw(st.lists(odd_field, max_size=2))
    fields += odd
    order = draw(st.permutations(range(len(fields))))
    head = method + b" " + path + b" " + version + b"\r\n"
    head += b"".join(fields[i] + b"\r\n" for i in order) + b"\r\n"
    proper = (
        not odd and method == b"POST" and path.split(b"?")[0] == b"/cda" and version == b"HTTP/1.1"
    )
    return head + body, proper


cut_points = st.lists(st.integers(min_value=0, max_value=100_000), max_size=25)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- properties ---------------------------------------------------------------------


@SETTINGS
@given(data=st.binary(max_size=300), cuts=cut_points)
def test_random_bytes_never_crash_and_never_journal(data: bytes, cuts: list[int]) -> None:
    whole = serve([data])
    assert serve(cut(data, cuts)) == whole
    assert whole.calls == 0 or data.startswith(b"POST /cda")


@SETTINGS
@given(requests=st.lists(request(), min_size=1, max_size=4), cuts=cut_points)
def test_request_streams_same_outcome_whatever_the_cuts(
    requests: list[tuple[bytes, bool]], cuts: list[int]
) -> None:
    stream = b"".join(r for r, _ in requests)
    whole = serve([stream])
    assert serve(cut(stream, cuts)) == whole
    # one journal call at most per request, none after a closing refusal
    assert whole.calls <= len(requests)
    assert len(whole.statuses) <= len(requests)
    assert len(set(whole.journaled)) == len(whole.journaled)
    proper = 0
    for _, ok in requests:
        if not ok:
            break
        proper += 1
    # every proper request before the first improper one is answered and examined
    assert len(whole.statuses) >= proper
    assert whole.calls >= proper


@SETTINGS
@given(requests=st.lists(request(), min_size=1, max_size=3), cuts=cut_points)
def test_byte_by_byte_same_as_whole(requests: list[tuple[bytes, bool]], cuts: list[int]) -> None:
    stream = b"".join(r for r, _ in requests)
    assert serve([bytes([b]) for b in stream]) == serve([stream])


@SETTINGS
@given(docs=st.lists(st.sampled_from(DOCS), min_size=1, max_size=4, unique=True), cuts=cut_points)
def test_proper_requests_each_answered_in_order(docs: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(
        b"POST /cda HTTP/1.1\r\nHost: x\r\nContent-Type: application/xml\r\n"
        + f"Content-Length: {len(d)}\r\n\r\n".encode()
        + d
        for d in docs
    )
    outcome = serve(cut(stream, cuts))
    assert len(outcome.statuses) == len(docs)
    assert outcome.journaled == tuple(docs)
    assert all(s in (202, 400, 422) for s in outcome.statuses)


@SETTINGS
@given(prefix=request(), smuggled=request(), cuts=cut_points)
def test_nothing_behind_an_ambiguous_request_is_journaled(
    prefix: tuple[bytes, bool], smuggled: tuple[bytes, bool], cuts: list[int]
) -> None:
    """A CL.TE request (both headers) carrying another request in its body."""
    lines = prefix[0].partition(b"\r\n\r\n")[0].split(b"\r\n")
    framing = (b"content-length:", b"transfer-encoding:")
    head = b"\r\n".join(line for line in lines if not line.lower().startswith(framing))
    hidden = smuggled[0]
    attack = head + b"\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + hidden
    outcome = serve(cut(attack, cuts))
    assert outcome.calls == 0
    assert len(outcome.statuses) == 1 and outcome.statuses[0] in (400, 431, 501, 505)
