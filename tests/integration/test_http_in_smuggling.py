"""The http listener refuses ambiguous request framing (RFC 9112) and caps the head on its bytes.

Raw sockets on 127.0.0.1: each attack is written as bytes, the answer read
until the server closes. A refused request is answered once, with
``Connection: close``, and nothing of it (nor of what follows it) is journaled.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from tests._http_client import TSH, post, raw, serving, status_of
from tests._listeners import FakeJournal, run

pytestmark = pytest.mark.integration

DOC = TSH.read_bytes()
HEAD = b"POST /cda HTTP/1.1\r\nHost: x\r\nContent-Type: application/xml\r\n"


def _chunked(body: bytes) -> bytes:
    return f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"


def _valid(body: bytes = DOC) -> bytes:
    return HEAD + f"Content-Length: {len(body)}\r\n\r\n".encode() + body


SMUGGLED = _valid()
"""A whole, valid second request: journaled if the listener reads on after the first."""


ATTACKS = {
    # CL.TE: a front end honouring Content-Length sees one request, h11 (chunked) two.
    "cl_and_te": HEAD
    + b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    + SMUGGLED,
    "te_and_cl": HEAD
    + b"Transfer-Encoding: chunked\r\nContent-Length: "
    + str(len(_chunked(DOC))).encode()
    + b"\r\n\r\n"
    + _chunked(DOC)
    + SMUGGLED,
    "content_length_twice_equal": HEAD
    + f"Content-Length: {len(DOC)}\r\nContent-Length: {len(DOC)}\r\n\r\n".encode()
    + DOC,
    "content_length_list": HEAD + f"Content-Length: {len(DOC)}, {len(DOC)}\r\n\r\n".encode() + DOC,
    "content_length_differing": HEAD + b"Content-Length: 5\r\nContent-Length: 7\r\n\r\nabcdefg",
    "te_http_1_0": HEAD.replace(b"HTTP/1.1", b"HTTP/1.0")
    + b"Transfer-Encoding: chunked\r\n\r\n"
    + _chunked(DOC),
    "obs_fold": HEAD
    + b"X-Trace: a\r\n b\r\n"
    + f"Content-Length: {len(DOC)}\r\n\r\n".encode()
    + DOC,
    "obs_fold_te": HEAD
    + b"X-Trace: a\r\n Transfer-Encoding: chunked\r\n"
    + f"Content-Length: {len(DOC)}\r\n\r\n".encode()
    + DOC,
    "bare_lf": HEAD.replace(b"\r\n", b"\n") + f"Content-Length: {len(DOC)}\n\n".encode() + DOC,
    "bare_cr": HEAD + b"X-Trace: a\rb\r\n" + f"Content-Length: {len(DOC)}\r\n\r\n".encode() + DOC,
}


@pytest.mark.parametrize("attack", list(ATTACKS.values()), ids=list(ATTACKS))
def test_ambiguous_framing_answered_400_closed_nothing_journaled(attack: bytes) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with serving(journal) as listener:
            response = await raw(listener.port, attack)
            assert (await post(listener.port, DOC)).status == 202  # the listener goes on
        assert status_of(response) == 400, response[:200]
        assert response.count(b"HTTP/1.1 ") == 1  # one answer: the rest was never read
        assert b"connection: close" in response.lower()
        assert len(journal.entries) == 1  # only the later, proper post

    run(scenario())


@pytest.mark.parametrize(
    "encoding", [b"gzip, chunked", b"chunked, identity", b"chunked\r\nTransfer-Encoding: chunked"]
)
def test_other_transfer_codings_answered_501_and_closed(encoding: bytes) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with serving(journal) as listener:
            attack = HEAD + b"Transfer-Encoding: " + encoding + b"\r\n\r\n" + _chunked(DOC)
            response = await raw(listener.port, attack + SMUGGLED)
        assert 400 <= status_of(response) <= 501
        assert response.count(b"HTTP/1.1 ") == 1
        assert journal.entries == []

    run(scenario())


def _many_headers(count: int) -> bytes:
    fields = b"".join(b"X-H%d: v\r\n" % i for i in range(count))
    return HEAD + fields + f"Content-Length: {len(DOC)}\r\n\r\n".encode() + DOC


@pytest.mark.parametrize("piece", [0, 1000, 1], ids=["one_write", "1000_bytes", "byte_by_byte"])
def test_header_cap_holds_whatever_the_chunking(piece: int) -> None:
    """5,000 header fields (about 60 KiB): 431, however the bytes arrive."""
    attack = _many_headers(5000) if piece != 1 else _many_headers(1700)  # ~20 KiB

    async def scenario() -> None:
        journal = FakeJournal()
        async with serving(journal) as listener:
            reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
            try:
                size = piece or len(attack)
                with contextlib.suppress(ConnectionError):
                    for start in range(0, len(attack), size):
                        writer.write(attack[start : start + size])
                        await writer.drain()
                async with asyncio.timeout(10):
                    response = await reader.read(-1)
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
        assert status_of(response) == 431
        assert b"connection: close" in response.lower()
        assert journal.entries == []

    run(scenario())


def test_head_just_under_the_cap_accepted() -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with serving(journal) as listener:
            filler = b"X-Pad: " + b"a" * (16 * 1024 - len(HEAD) - 200) + b"\r\n"
            request = HEAD + filler + f"Content-Length: {len(DOC)}\r\n\r\n".encode() + DOC
            response = await raw(
                listener.port, request.replace(HEAD, HEAD + b"Connection: close\r\n")
            )
        assert status_of(response) == 202
        assert len(journal.entries) == 1

    run(scenario())


def test_pipelined_requests_each_answered_in_order() -> None:
    """Two proper requests in one write: both parsed (the bytes after the first carry
    over to the next request), both answered, each journaled once."""

    async def scenario() -> None:
        journal = FakeJournal()
        other = DOC.replace(b"<title>", b"<title>x", 1)
        closing = HEAD + b"Connection: close\r\n"
        second = closing + f"Content-Length: {len(other)}\r\n\r\n".encode() + other
        async with serving(journal, validate_schema=False) as listener:
            response = await raw(listener.port, _valid() + second)
        assert response.count(b"HTTP/1.1 202 ") == 2
        assert [e.payload for e in journal.entries] == [DOC, other]

    run(scenario())


def test_smuggled_request_after_a_refused_one_is_never_journaled() -> None:
    """The classic CL.TE probe, its smuggled request spelled as a real document."""

    async def scenario() -> None:
        journal = FakeJournal()
        prefix = b"0\r\n\r\n"
        attack = (
            HEAD
            + f"Content-Length: {len(prefix) + len(SMUGGLED)}\r\n".encode()
            + b"Transfer-Encoding: chunked\r\n\r\n"
            + prefix
            + SMUGGLED
        )
        async with serving(journal) as listener:
            response = await raw(listener.port, attack)
        assert status_of(response) == 400
        assert journal.entries == []

    run(scenario())
