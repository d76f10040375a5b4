"""The SCP's acceptor (dicom_router._acceptor) on 127.0.0.1, without the engine.

pynetdicom's SCU, and a raw client (A-ASSOCIATE-RQ encoded by pynetdicom,
P-DATA by our codec) for what a well-behaved SCU never sends: requests on
contexts that were not accepted, unsupported commands, responses, unknown PDUs.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from io import BytesIO

import pydicom
import pytest
from pynetdicom import AE, build_context, build_role
from pynetdicom.pdu import A_ASSOCIATE_AC as AssociateAcPdu
from pynetdicom.pdu import A_ASSOCIATE_RJ as AssociateRjPdu
from pynetdicom.pdu import A_ASSOCIATE_RQ as AssociateRqPdu
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    MaximumLengthNotification,
)
from pynetdicom.sop_class import CTImageStorage, Verification  # type: ignore[attr-defined]

from dicom_router import _dimse
from dicom_router._acceptor import Acceptor, StoreRequest, Verdict
from dicom_router._dimse import Command
from dicom_router.scp import _SUPPORTED_CONTEXTS
from standins.dicom import ct_small_path, storescu

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

HOST = "127.0.0.1"
CT = str(CTImageStorage)


class Recorder:
    def __init__(self, status: int = 0) -> None:
        self.status = status
        self.requests: list[tuple[StoreRequest, bytes]] = []
        self.gate: threading.Event | None = None

    def __call__(self, request: StoreRequest) -> int:
        self.requests.append((request, b"".join(request.dataset)))
        if self.gate is not None:
            self.gate.wait(10)
        if self.status < 0:
            raise RuntimeError("handler broken")
        return self.status


def screen(calling: str, called: str, address: str) -> Verdict | None:
    if called != "SCP":
        return (0x01, 0x01, 0x07)
    if calling == "INTRUDER":
        return (0x01, 0x01, 0x03)
    return None


@contextlib.contextmanager
def acceptor(on_store: Callable[[StoreRequest], int], **kwargs: object) -> Iterator[Acceptor]:
    server = Acceptor(
        name="test",
        host=HOST,
        port=0,
        contexts=_SUPPORTED_CONTEXTS,
        screen=screen,
        on_store=on_store,
        **kwargs,  # type: ignore[arg-type]
    )
    server.start()
    try:
        yield server
    finally:
        server.stop(0.5)


def scu(max_pdu: int = 16384) -> AE:
    ae = AE("SCU")
    ae.maximum_pdu_size = max_pdu
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 5
    return ae


def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.01)


# -- a raw client --------------------------------------------------------------


class Raw:
    """A socket that associated (or tried to) with contexts {id: (abstract, transfer)}."""

    def __init__(
        self,
        port: int,
        contexts: dict[int, tuple[str, str]],
        called: str = "SCP",
        calling: str = "RAW",
    ) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=5)
        self.rest = b""
        rq = A_ASSOCIATE()
        rq.application_context_name = "1.2.840.10008.3.1.1.1"
        rq.calling_ae_title = calling
        rq.called_ae_title = called
        for cid, (abstract, transfer) in contexts.items():
            cx = build_context(abstract, [transfer])
            cx.context_id = cid
            rq.presentation_context_definition_list.append(cx)
        max_len = MaximumLengthNotification()
        max_len.maximum_length_received = 0
        impl = ImplementationClassUIDNotification()
        impl.implementation_class_uid = "1.2.3.4"
        rq.user_information = [max_len, impl]
        pdu = AssociateRqPdu()
        pdu.from_primitive(rq)
        self.sock.sendall(pdu.encode())
        self.answer = self.read_pdu()

    def read_pdu(self) -> tuple[int, bytes]:
        head = self.read(6)
        pdu_type, length = _dimse.parse_pdu_header(head)
        return pdu_type, head + self.read(length)

    def read(self, n: int) -> bytes:
        while len(self.rest) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.rest += chunk
        out, self.rest = self.rest[:n], self.rest[n:]
        return out

    def accepted(self) -> dict[int, int]:
        pdu_type, raw = self.answer
        assert pdu_type == _dimse.A_ASSOCIATE_AC
        ac = AssociateAcPdu()
        ac.decode(raw)
        return {
            int(cx.context_id): int(cx.result)
            for cx in ac.to_primitive().presentation_context_definition_results_list
        }

    def rejection(self) -> tuple[int, int, int]:
        pdu_type, raw = self.answer
        assert pdu_type == _dimse.A_ASSOCIATE_RJ
        rj = AssociateRjPdu()
        rj.decode(raw)
        return (rj.result, rj.source, rj.reason_diagnostic)

    def send(self, context_id: int, command: Command, dataset: bytes | None = None) -> None:
        out = _dimse.pdata_pdus(context_id, _dimse.encode_command(command), 0)
        if dataset is not None:
            out += _dimse.pdata_pdus(context_id, dataset, 0, command=False)
        self.sock.sendall(b"".join(out))

    def response(self) -> Command:
        pdu_type, raw = self.read_pdu()
        assert pdu_type == _dimse.P_DATA_TF, raw
        ((_cid, control, data),) = _dimse.parse_pdvs(raw[6:])
        assert control == 0x03
        return _dimse.decode_command(data)

    def close(self) -> None:
        self.sock.close()


def ct_dataset() -> tuple[bytes, str]:
    ds = pydicom.dcmread(ct_small_path())
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    raw = buf.getvalue()
    offset = 132 + 12 + int.from_bytes(raw[140:144], "little")
    return raw[offset:], str(ds.SOPInstanceUID)


def _pdata(context_id: int, control: int, data: bytes) -> bytes:
    """One P-DATA-TF PDU holding one PDV (``control``: 0x00 data, not the last fragment)."""
    item = (len(data) + 2).to_bytes(4, "big") + bytes([context_id, control]) + data
    return bytes([_dimse.P_DATA_TF, 0]) + len(item).to_bytes(4, "big") + item


def _store_rq(uid: str, message_id: int = 1) -> Command:
    return Command(
        command_field=_dimse.C_STORE_RQ,
        data_set_type=0,
        message_id=message_id,
        affected_sop_class_uid=CT,
        affected_sop_instance_uid=uid,
        priority=0,
    )


def _echo(raw: Raw, context_id: int, message_id: int) -> int:
    rq = Command(
        command_field=_dimse.C_ECHO_RQ,
        message_id=message_id,
        affected_sop_class_uid=str(Verification),
    )
    raw.send(context_id, rq)
    return raw.response().status


# -- tests -----------------------------------------------------------------------


@pytest.mark.parametrize("max_pdu", [4096, 0])
def test_pynetdicom_scu_stores_with_role_selection_and_fragments(max_pdu: int) -> None:
    recorder = Recorder()
    ds = pydicom.dcmread(ct_small_path())
    with acceptor(recorder, max_pdu=8192) as server:
        ae = scu(max_pdu)
        ae.add_requested_context(CTImageStorage, ds.file_meta.TransferSyntaxUID)
        ae.add_requested_context(Verification)
        role = build_role(CTImageStorage, scu_role=True, scp_role=False)
        assoc = ae.associate(HOST, server.port, ae_title="SCP", ext_neg=[role])
        assert assoc.is_established
        assert assoc.acceptor.maximum_length == 8192
        assert assoc.send_c_echo().Status == 0
        status = assoc.send_c_store(ds)
        assert status.Status == 0x0000
        assoc.release()
        assert assoc.is_released
    ((request, data),) = recorder.requests
    assert request.calling_ae == "SCU" and request.address[0] == HOST
    assert request.command.affected_sop_instance_uid == ds.SOPInstanceUID
    assert request.transfer_syntax == ds.file_meta.TransferSyntaxUID
    assert len(request.dataset) > 1 and request.size == len(data)
    assert data == ct_dataset()[0]


def test_storescu_with_several_transfer_syntaxes() -> None:
    recorder = Recorder()
    with acceptor(recorder) as server:
        for args in [(), ("-xi",), ("-xb",)]:
            rc, out = storescu(HOST, server.port, [ct_small_path()], "SCP", extra_args=args)
            assert rc == 0, out
    syntaxes = [str(r.transfer_syntax) for r, _ in recorder.requests]
    assert syntaxes[1:] == ["1.2.840.10008.1.2", "1.2.840.10008.1.2.2"]


def test_refusals_and_the_limit() -> None:
    recorder = Recorder()
    recorder.gate = threading.Event()
    with acceptor(recorder, max_associations=1) as server:
        for called, calling, verdict in [
            ("OTHER", "RAW", (1, 1, 7)),
            ("SCP", "INTRUDER", (1, 1, 3)),
        ]:
            refused = Raw(server.port, {1: (CT, "1.2.840.10008.1.2")}, called, calling)
            assert refused.rejection() == verdict
            refused.close()
        wait_until(lambda: not server.active_associations)
        first = Raw(server.port, {1: (CT, "1.2.840.10008.1.2")})
        assert first.accepted() == {1: 0}
        second = Raw(server.port, {1: (CT, "1.2.840.10008.1.2")})
        assert second.rejection() == (2, 3, 2)
        first.sock.sendall(bytes([_dimse.A_RELEASE_RQ, 0, 0, 0, 0, 4, 0, 0, 0, 0]))
        assert first.read_pdu()[0] == _dimse.A_RELEASE_RP
        first.close()
        second.close()


def test_wrong_context_unsupported_commands_and_a_failing_handler() -> None:
    recorder = Recorder(status=-1)
    dataset, uid = ct_dataset()
    with acceptor(recorder) as server:
        raw = Raw(
            server.port,
            {
                1: (CT, "1.2.840.10008.1.2.1"),
                3: (str(Verification), "1.2.840.10008.1.2"),
                5: ("1.2.840.10008.5.1.4.1.2.2.1", "1.2.840.10008.1.2"),  # C-FIND: refused
            },
        )
        assert raw.accepted() == {1: 0, 3: 0, 5: 3}
        store = _store_rq(uid)
        raw.send(5, store, dataset)  # context not accepted
        rsp = raw.response()
        assert (rsp.command_field, rsp.status, rsp.message_id_being_responded_to) == (
            _dimse.C_STORE_RSP,
            0x0122,
            1,
        )
        raw.send(3, store, dataset)  # a C-STORE on the Verification context
        assert raw.response().status == 0x0122
        find = Command(
            command_field=0x0020,
            data_set_type=0,
            message_id=2,
            affected_sop_class_uid="1.2.840.10008.5.1.4.1.2.2.1",
            priority=0,
        )
        raw.send(1, find, b"\x08\x00\x52\x00\x06\x00\x00\x00STUDY ")
        rsp = raw.response()
        assert (rsp.command_field, rsp.status, rsp.message_id_being_responded_to) == (
            0x8020,
            0x0211,
            2,
        )
        raw.send(1, Command(command_field=_dimse.C_CANCEL_RQ, message_id_being_responded_to=2))
        raw.send(1, store, dataset)  # the handler raises: a failure status, not a crash
        assert raw.response().status == 0xC211
        echo = Command(
            command_field=_dimse.C_ECHO_RQ, message_id=4, affected_sop_class_uid=str(Verification)
        )
        raw.send(3, echo)
        rsp = raw.response()
        assert (rsp.command_field, rsp.status, rsp.message_id_being_responded_to) == (
            _dimse.C_ECHO_RSP,
            0,
            4,
        )
        # A response from the requestor is a protocol error: A-ABORT.
        raw.send(1, Command(command_field=_dimse.C_STORE_RSP, status=0))
        pdu_type, body = raw.read_pdu()
        assert pdu_type == _dimse.A_ABORT
        raw.close()
        assert len(recorder.requests) == 1


@pytest.mark.parametrize(
    "pdu",
    [
        bytes([0x09, 0, 0, 0, 0, 2, 0, 0]),  # unknown type: unrecognized PDU
        bytes([0x02, 0, 0, 0, 0, 2, 0, 0]),  # A-ASSOCIATE-AC: unexpected PDU
        bytes([0x04, 0, 0, 0, 0, 3, 0, 0, 9]),  # P-DATA with a broken item
        bytes([0x04, 0, 0, 0x10, 0, 1]),  # P-DATA longer than max_pdu: not read
    ],
)
def test_bad_pdus_are_aborted_and_others_go_on(pdu: bytes) -> None:
    recorder = Recorder()
    with acceptor(recorder, max_pdu=4096) as server:
        bad = Raw(server.port, {1: (CT, "1.2.840.10008.1.2")})
        good = Raw(server.port, {1: (str(Verification), "1.2.840.10008.1.2")})
        bad.sock.sendall(pdu)
        pdu_type, raw = bad.read_pdu()
        assert pdu_type == _dimse.A_ABORT and raw[8] == 0x02, raw
        with pytest.raises(EOFError):
            bad.read_pdu()
        assert _echo(good, 1, 1) == 0
        bad.close()
        good.close()


def test_idle_timeout_and_stop_aborts_what_is_left() -> None:
    with acceptor(Recorder(), network_timeout=0.5, acse_timeout=0.5) as server:
        with socket.create_connection((HOST, server.port), timeout=5) as silent:
            assert silent.recv(64) == b""  # ARTIM: closed without a PDU
        idle = Raw(server.port, {1: (CT, "1.2.840.10008.1.2")})
        started = time.monotonic()
        assert idle.read_pdu()[0] == _dimse.A_ABORT
        assert time.monotonic() - started < 3
        idle.close()
    recorder = Recorder()
    server = Acceptor(
        name="t", host=HOST, port=0, contexts=_SUPPORTED_CONTEXTS, screen=screen, on_store=recorder
    )
    server.start()
    open_one = Raw(server.port, {1: (CT, "1.2.840.10008.1.2")})
    port = server.port
    started = time.monotonic()
    assert server.stop(0.3) == 1
    assert open_one.read_pdu()[0] == _dimse.A_ABORT
    assert time.monotonic() - started < 3
    open_one.close()
    with pytest.raises(OSError):
        socket.create_connection((HOST, port), timeout=2)


def test_a_message_trickled_past_the_dimse_timeout_is_aborted() -> None:
    recorder = Recorder()
    dataset, uid = ct_dataset()
    with acceptor(recorder, network_timeout=3, dimse_timeout=0.6) as server:
        slow = Raw(server.port, {1: (CT, "1.2.840.10008.1.2.1")})
        other = Raw(server.port, {1: (str(Verification), "1.2.840.10008.1.2")})
        slow.send(1, _store_rq(uid))
        started = time.monotonic()
        answer: list[tuple[int, bytes]] = []
        for i in range(40):  # one fragment every 0.1 s: never idle for the network timeout
            try:
                slow.sock.sendall(_pdata(1, 0x00, dataset[i * 100 : (i + 1) * 100]))
            except OSError:
                break
            slow.sock.settimeout(0.1)
            try:
                answer.append(slow.read_pdu())
                break
            except TimeoutError:
                continue
        assert answer and answer[0][0] == _dimse.A_ABORT, answer
        assert 0.5 < time.monotonic() - started < 2.5
        assert recorder.requests == []
        assert _echo(other, 1, 7) == 0  # the others are served meanwhile
        slow.close()
        other.close()

        # A message sent at once is not concerned, however long the association lasts.
        steady = Raw(server.port, {1: (CT, "1.2.840.10008.1.2.1")})
        for n in range(3):
            time.sleep(0.4)
            steady.send(1, _store_rq(uid, n + 1), dataset)
            assert steady.response().status == 0
        steady.close()
    assert len(recorder.requests) == 3


def test_a_data_set_over_max_dataset_is_refused_and_the_association_goes_on() -> None:
    dataset, uid = ct_dataset()
    recorder = Recorder()
    with acceptor(recorder, max_dataset=len(dataset) - 1, max_pdu=8192) as server:
        raw = Raw(
            server.port,
            {1: (CT, "1.2.840.10008.1.2.1"), 3: (str(Verification), "1.2.840.10008.1.2")},
        )
        # Fragments of 4 kB: the limit is crossed mid-way, the rest is read and dropped.
        raw.send(1, _store_rq(uid))
        raw.sock.sendall(b"".join(_dimse.pdata_pdus(1, dataset, 4096, command=False)))
        rsp = raw.response()
        assert (rsp.command_field, rsp.status, rsp.message_id_being_responded_to) == (
            _dimse.C_STORE_RSP,
            0xA700,
            1,
        )
        assert recorder.requests == []
        assert _echo(raw, 3, 2) == 0
        raw.close()
    with acceptor(recorder, max_dataset=len(dataset)) as server:  # exactly the limit: kept
        raw = Raw(server.port, {1: (CT, "1.2.840.10008.1.2.1")})
        raw.send(1, _store_rq(uid), dataset)
        assert raw.response().status == 0
        raw.close()
    ((request, data),) = recorder.requests
    assert data == dataset and request.size == len(dataset)


def test_silent_connections_do_not_take_the_places_of_associations() -> None:
    with acceptor(Recorder(), max_associations=1, acse_timeout=10, max_pending=3) as server:
        silent = [socket.create_connection((HOST, port), timeout=5) for port in [server.port] * 2]
        wait_until(lambda: len(server.active_associations) == 2)
        # Two connections negotiating do not count against max_associations (1).
        first = Raw(server.port, {1: (str(Verification), "1.2.840.10008.1.2")})
        assert first.accepted() == {1: 0}
        assert _echo(first, 1, 1) == 0
        # ... the established one does.
        second = Raw(server.port, {1: (str(Verification), "1.2.840.10008.1.2")})
        assert second.rejection() == (2, 3, 2)
        second.close()
        # Past max_pending (3) connections still negotiating, a new one evicts the oldest.
        silent.append(socket.create_connection((HOST, server.port), timeout=5))
        wait_until(lambda: len(server.active_associations) == 4)
        started = time.monotonic()
        with socket.create_connection((HOST, server.port), timeout=5):
            assert silent[0].recv(64) == b""
            assert time.monotonic() - started < 2  # not after acse_timeout (10 s)
            assert server.admission.counts["evicted"] == 1
        assert _echo(first, 1, 2) == 0
        for sock in silent:
            sock.close()
        # Once they are gone, new connections are served again.
        wait_until(lambda: len(server.active_associations) == 1)
        again = Raw(server.port, {1: (str(Verification), "1.2.840.10008.1.2")})
        assert again.rejection() == (2, 3, 2)  # the limit still holds: first is open
        again.close()
        first.sock.sendall(bytes([_dimse.A_RELEASE_RQ, 0, 0, 0, 0, 4, 0, 0, 0, 0]))
        assert first.read_pdu()[0] == _dimse.A_RELEASE_RP
        first.close()
        wait_until(lambda: not server.active_associations)
        last = Raw(server.port, {1: (str(Verification), "1.2.840.10008.1.2")})
        assert last.accepted() == {1: 0}
        last.close()
