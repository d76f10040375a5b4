"""Property tests of the SCP's wire parsers: any bytes give a result or ProtocolError, nothing else.

Covers :mod:`dicom_router._dimse` (PDU header, PDV items, command sets) and the
acceptor's message reassembly (``dicom_router._dimse.Message``), with
random bytes and with structurally plausible input (element and item headers
around random lengths), where the interesting paths are.
"""

from __future__ import annotations

import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dicom_router import _dimse
from dicom_router._dimse import Command, Message, ProtocolError

pytestmark = pytest.mark.fuzz

US_ELEMENTS = [0x0100, 0x0110, 0x0120, 0x0700, 0x0800, 0x0900, 0x1031]
TEXT_ELEMENTS = [0x0002, 0x0003, 0x0600, 0x1000, 0x1030]


def command_element(elem: int, value: bytes, length: int | None = None, group: int = 0) -> bytes:
    n = len(value) if length is None else length
    return struct.pack("<HHL", group, elem, n) + value


elements = st.one_of(
    st.builds(
        command_element,
        st.sampled_from(US_ELEMENTS),
        st.binary(min_size=0, max_size=4),
    ),
    st.builds(
        command_element,
        st.sampled_from(TEXT_ELEMENTS),
        st.binary(max_size=70),
    ),
    st.builds(  # a length that lies
        command_element,
        st.sampled_from(US_ELEMENTS + TEXT_ELEMENTS + [0x0000, 0x5555]),
        st.binary(max_size=8),
        st.integers(min_value=0, max_value=0xFFFFFFFF),
    ),
    st.builds(  # another group
        command_element,
        st.integers(0, 0xFFFF),
        st.binary(max_size=8),
        st.none(),
        st.integers(0, 0xFFFF),
    ),
    st.binary(max_size=12),
)
command_sets = st.lists(elements, max_size=12).map(b"".join)


def pdv_item(context_id: int, control: int, data: bytes, length: int | None = None) -> bytes:
    n = len(data) + 2 if length is None else length
    return struct.pack(">LBB", n, context_id, control) + data


pdv_items = st.lists(
    st.one_of(
        st.builds(pdv_item, st.integers(0, 255), st.integers(0, 255), st.binary(max_size=40)),
        st.builds(
            pdv_item,
            st.integers(0, 255),
            st.integers(0, 255),
            st.binary(max_size=40),
            st.integers(0, 0xFFFFFFFF),
        ),
        st.binary(max_size=8),
    ),
    max_size=8,
).map(b"".join)


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=200))
def test_random_bytes_never_raise_anything_but_protocol_error(data: bytes) -> None:
    for parse in (_dimse.parse_pdu_header, _dimse.parse_pdvs, _dimse.decode_command):
        try:
            parse(data)
        except ProtocolError:
            pass


@settings(max_examples=500, deadline=None)
@given(data=command_sets)
def test_command_sets_decode_or_raise_protocol_error(data: bytes) -> None:
    try:
        command = _dimse.decode_command(data)
    except ProtocolError:
        return
    assert isinstance(command, Command)
    # What was decoded encodes and decodes to the same command.
    assert _dimse.decode_command(_dimse.encode_command(command)) == command


@settings(max_examples=500, deadline=None)
@given(body=pdv_items)
def test_pdv_items_parse_within_the_body_or_raise_protocol_error(body: bytes) -> None:
    try:
        pdvs = _dimse.parse_pdvs(body)
    except ProtocolError:
        return
    assert sum(len(data) + 6 for _, _, data in pdvs) == len(body)


valid_command = _dimse.encode_command(
    Command(command_field=_dimse.C_STORE_RQ, data_set_type=0x0000, message_id=1)
)
fragments = st.lists(
    st.tuples(
        st.sampled_from([1, 1, 1, 3]),
        st.integers(0, 3),
        st.one_of(
            st.just(valid_command),
            st.just(valid_command[:10]),
            st.just(valid_command[10:]),
            st.binary(max_size=30),
        ),
    ),
    max_size=8,
)


@settings(max_examples=500, deadline=None)
@given(pdvs=fragments, max_data=st.integers(0, 64))
def test_message_reassembly_completes_or_raises_protocol_error(
    pdvs: list[tuple[int, int, bytes]], max_data: int
) -> None:
    message = Message(max_data)
    data_in = b""
    try:
        for context_id, control, data in pdvs:
            if not control & 1:
                data_in += data
            if message.add(context_id, control, memoryview(data)):
                assert message.command is not None
                message = Message(max_data)
                data_in = b""
                continue
            # A data set is kept whole while within max_data, and dropped past it.
            assert message.data_size == len(data_in)
            assert message.dropped == (len(data_in) > max_data)
            assert b"".join(message.data) == (b"" if message.dropped else data_in)
    except ProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=3000), peer_max=st.integers(0, 300), context_id=st.integers(1, 255))
def test_pdata_pdus_parse_back_to_the_same_bytes(
    data: bytes, peer_max: int, context_id: int
) -> None:
    out = b""
    for pdu in _dimse.pdata_pdus(context_id, data, peer_max, command=False):
        pdu_type, length = _dimse.parse_pdu_header(pdu[:6])
        assert pdu_type == _dimse.P_DATA_TF and length == len(pdu) - 6
        if peer_max:
            assert length <= max(peer_max, 7)
        for cid, control, piece in _dimse.parse_pdvs(pdu[6:]):
            assert cid == context_id and not control & 1
            out += bytes(piece)
    assert out == data


def _pdu(pdu_type: int, body: bytes) -> bytes:
    return struct.pack(">BxL", pdu_type, len(body)) + body


_response_pdus = st.one_of(
    st.builds(  # a command fragment: a plausible C-STORE-RSP, or any command set
        lambda cid, control, command: _pdu(0x04, pdv_item(cid, control | 0x01, command)),
        st.integers(0, 255),
        st.sampled_from([0x00, 0x02]),
        st.one_of(
            command_sets,
            st.builds(
                lambda mid, status: _dimse.store_rsp(
                    Command(command_field=_dimse.C_STORE_RQ, message_id=mid), status
                ),
                st.sampled_from([1, 2]),
                st.integers(0, 0xFFFF),
            ),
        ),
    ),
    st.builds(lambda body: _pdu(0x04, body), pdv_items),
    st.builds(_pdu, st.integers(0, 255), st.binary(max_size=12)),
    st.binary(max_size=12),
)


@settings(max_examples=300, deadline=None)
@given(stream=st.lists(_response_pdus, max_size=5).map(b"".join))
def test_requestor_reads_a_response_or_fails_with_its_errors(stream: bytes) -> None:
    """Whatever the peer sends while a C-STORE-RSP is awaited: a Status, or the
    requestor's errors, and the association ends closed on an error."""
    import socket

    from dicom_router._requestor import Requestor, RequestorError

    ours, theirs = socket.socketpair()
    requestor = Requestor(
        ours,
        {("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2"): 1},
        0,
        max_pdu=4096,
        acse_timeout=1,
        network_timeout=1,
    )
    try:
        theirs.sendall(stream)
        theirs.close()
        try:
            status = requestor._response(1, 1, time.monotonic() + 1, 1)
        except (RequestorError, ProtocolError, OSError):
            assert not requestor.established and ours.fileno() == -1
        else:
            assert 0 <= status <= 0xFFFF
    finally:
        ours.close()
        theirs.close()


# -- association-level garbage, through a whole Association ------------------------


def _associate_rq(calling: str = "FUZZ", called: str = "SCP") -> bytes:
    from pynetdicom import build_context
    from pynetdicom.pdu import A_ASSOCIATE_RQ
    from pynetdicom.pdu_primitives import (
        A_ASSOCIATE,
        ImplementationClassUIDNotification,
        MaximumLengthNotification,
    )

    rq = A_ASSOCIATE()
    rq.application_context_name = "1.2.840.10008.3.1.1.1"
    rq.calling_ae_title = calling
    rq.called_ae_title = called
    cx = build_context("1.2.840.10008.1.1", ["1.2.840.10008.1.2"])
    cx.context_id = 1
    rq.presentation_context_definition_list = [cx]
    max_len = MaximumLengthNotification()
    max_len.maximum_length_received = 0
    impl = ImplementationClassUIDNotification()
    impl.implementation_class_uid = "1.2.3.4"
    rq.user_information = [max_len, impl]
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(rq)
    return bytes(pdu.encode())


_RQ = _associate_rq()
_ECHO = _pdu(
    0x04,
    pdv_item(
        1,
        0x03,
        _dimse.encode_command(
            Command(
                command_field=_dimse.C_ECHO_RQ,
                message_id=1,
                affected_sop_class_uid="1.2.840.10008.1.1",
            )
        ),
    ),
)


def _flip(data: bytes, positions: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for pos, value in positions:
        out[pos % len(out)] = value
    return bytes(out)


_garbage_pdus = st.one_of(
    st.builds(_pdu, st.integers(0, 255), st.binary(max_size=64)),  # any type, any body
    st.builds(  # a header whose length lies (up to 4 GiB), then a few bytes
        lambda t, n, body: struct.pack(">BxL", t, n) + body,
        st.integers(0, 255),
        st.integers(0, 0xFFFFFFFF),
        st.binary(max_size=16),
    ),
    st.builds(lambda body: _pdu(0x04, body), pdv_items),  # P-DATA with any PDV items
    st.builds(  # an A-ASSOCIATE-RQ with bytes overwritten
        _flip,
        st.just(_RQ),
        st.lists(st.tuples(st.integers(0, len(_RQ) - 1), st.integers(0, 255)), max_size=6),
    ),
    st.builds(lambda n: _RQ[:n], st.integers(0, len(_RQ))),  # truncated
    st.just(_ECHO),
    st.just(bytes([0x05, 0, 0, 0, 0, 4, 0, 0, 0, 0])),  # A-RELEASE-RQ
    st.binary(max_size=24),
)
_association_streams = st.tuples(
    st.sampled_from([b"", _RQ, _associate_rq(called="OTHER")]),
    st.lists(_garbage_pdus, max_size=5).map(b"".join),
)

_ANSWERS = {0x02, 0x03, 0x04, 0x06, 0x07}  # AC, RJ, P-DATA (responses), RELEASE-RP, ABORT


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom on bad UIDs: as in production
@settings(max_examples=300, deadline=None)
@given(stream=_association_streams)
def test_association_level_garbage_gets_an_abort_a_reject_or_a_close(
    stream: tuple[bytes, bytes],
) -> None:
    """Whatever a peer sends from the first byte on: the association never fails inside
    (no 'internal error'), answers only with PDUs an acceptor may send, and ends
    closed; garbage before an association is established gets an A-ASSOCIATE-RJ, an
    A-ABORT or a close, never an A-ASSOCIATE-AC."""
    import logging
    import socket

    from dicom_router._acceptor import Acceptor, Association
    from dicom_router.scp import _SUPPORTED_CONTEXTS

    prefix, garbage = stream
    server = Acceptor(
        name="fuzz",
        host="127.0.0.1",
        port=0,
        contexts=_SUPPORTED_CONTEXTS,
        screen=lambda calling, called, address: None if called == "SCP" else (1, 1, 7),
        on_store=lambda request: 0,
        acse_timeout=2,
        network_timeout=2,
        dimse_timeout=2,
        max_pdu=4096,
    )
    errors: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = errors.append  # type: ignore[method-assign]
    logger = logging.getLogger("dicom_router._acceptor")
    logger.addHandler(handler)
    ours, theirs = socket.socketpair()
    try:
        ours.settimeout(2)
        theirs.settimeout(5)
        association = Association(server, ours, ("127.0.0.1", 104))
        theirs.sendall(prefix + garbage)
        theirs.shutdown(socket.SHUT_WR)
        started = time.monotonic()
        association.run()  # must return, not raise
        assert time.monotonic() - started < 4
        answer = b""
        reset = False
        try:
            while chunk := theirs.recv(65536):
                answer += chunk
        except ConnectionResetError:
            # Closed with bytes of ours still unread (a PDU it stopped reading at): the
            # kernel answers with a reset, which may drop what was in flight. A close.
            reset = True
    finally:
        logger.removeHandler(handler)
        ours.close()
        theirs.close()
    assert not errors, [r.getMessage() for r in errors]
    kinds = []
    while len(answer) >= 6 and (len(answer) >= 6 + struct.unpack(">BxL", answer[:6])[1]):
        kind, length = struct.unpack(">BxL", answer[:6])
        kinds.append(kind)
        answer = answer[6 + length :]
    assert (answer == b"" or reset) and set(kinds) <= _ANSWERS, kinds
    if reset:
        return  # what arrived is allowed; what the reset dropped cannot be checked
    if prefix == _RQ:
        assert kinds[:1] == [0x02]  # established; whatever follows ends as listed above
    elif prefix:
        assert kinds == [0x03]  # called AE not ours: A-ASSOCIATE-RJ, then closed
    elif kinds:
        assert kinds[0] in (0x02, 0x03, 0x07)  # never a P-DATA or RELEASE-RP first
