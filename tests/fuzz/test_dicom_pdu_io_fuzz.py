"""Property tests of the shared PDU reader (dicom_router._pdu_io.PduSocket) on a socket pair.

Any sequence of PDUs, cut anywhere into the writes of the peer, is read back as the
same (type, body) pairs, with or without read-ahead (the acceptor reads exact
headers, the requestor 1 kB ahead); the peer's close is :class:`Closed`.
"""

from __future__ import annotations

import socket
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dicom_router._pdu import pdu_header
from dicom_router._pdu_io import Closed, PduSocket

pytestmark = pytest.mark.fuzz

_pdus = st.lists(st.tuples(st.integers(1, 7), st.binary(max_size=3000)), min_size=1, max_size=8)


@settings(max_examples=150, deadline=None)
@given(
    pdus=_pdus,
    cuts=st.lists(st.integers(1, 4000), max_size=12),
    readahead=st.sampled_from([0, 7, 1024]),
)
def test_any_cut_of_a_pdu_stream_reads_back_the_same_pdus(
    pdus: list[tuple[int, bytes]], cuts: list[int], readahead: int
) -> None:
    stream = b"".join(pdu_header(t, len(body)) + body for t, body in pdus)
    ours, theirs = socket.socketpair()
    ours.settimeout(5)

    def write() -> None:
        pos = 0
        for cut in cuts:
            theirs.sendall(stream[pos : pos + cut])
            pos += cut
        theirs.sendall(stream[pos:])
        theirs.shutdown(socket.SHUT_WR)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    io = PduSocket(ours, readahead=readahead)
    try:
        got = []
        for _ in pdus:
            pdu_type, length = io.read_header()
            got.append((pdu_type, bytes(io.read_body(length))))
        assert got == pdus
        with pytest.raises(Closed):
            io.read_header()
    finally:
        writer.join(5)
        io.close()
        theirs.close()
