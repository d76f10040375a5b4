"""The forwarding sender (dicom_router._store_scu on dicom_router._requestor) against real peers.

dcmtk ``storescp`` (raw and marked instances, a small Maximum Length Received,
association reuse and release), and a scripted peer on 127.0.0.1 for what a
well-behaved SCP never does: A-ASSOCIATE-RJ, A-ABORT, silence, a connection
closed mid-PDU, a release request instead of a response, every status class,
a tiny maximum PDU length (fragmentation checked PDU by PDU).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pynetdicom.pdu import A_ASSOCIATE_AC as AssociateAcPdu
from pynetdicom.pdu import A_ASSOCIATE_RJ as AssociateRjPdu
from pynetdicom.pdu import A_ASSOCIATE_RQ as AssociateRqPdu
from pynetdicom.pdu_primitives import A_ASSOCIATE, MaximumLengthNotification

from dicom_router import _dimse
from dicom_router._dimse import Command
from dicom_router._store_scu import StoreScu, _dataset_offset
from dicom_router.config import Coercion
from dicom_router.forward import DicomDestinationConfig
from dicom_router.reference import InstanceRef
from eai.errors import PermanentDeliveryError, TransientDeliveryError
from standins.dicom import HOST, StoreScp, dataset_bytes
from standins.net import free_port
from tests._dicom_spool import spooled_ct as spooled_part10

pytestmark = pytest.mark.integration


def spooled_ct(tmp_path: Path) -> tuple[InstanceRef, bytes]:
    """pydicom's CT_small in a spool under ``tmp_path``: its reference and its dataset bytes."""
    ref, data = spooled_part10(tmp_path / "spool")
    return ref, data[_dataset_offset(data) :]


def destination(port: int, **kw: Any) -> DicomDestinationConfig:
    return DicomDestinationConfig.model_validate(
        {"name": "pacs", "ae_title": "PACS", "host": HOST, "port": port, **kw}
    )


# -- dcmtk storescp ----------------------------------------------------------


def test_storescp_gets_raw_and_marked_instances_with_a_small_pdu(tmp_path: Path) -> None:
    ref, dataset = spooled_ct(tmp_path)
    marked = ref.with_coercion([Coercion.model_validate({"set": "InstitutionName", "value": "X"})])
    with StoreScp(tmp_path / "out", "PACS", extra_args=("--max-pdu", "4096")) as scp:
        scu = StoreScu(destination(scp.port))
        try:
            link = scu.links[0]
            assert scu.send(link, ref).detail == "0x0000"
            first = link.assoc
            assert first is not None and first.peer_max_pdu == 4096
            assert scu.send(link, marked).detail == "0x0000"
            assert link.assoc is first  # reused
        finally:
            scu.release_idle(0.0)
        assert link.assoc is None and not first.established
        files = scp.wait_files(2)
        (coerced,) = [f for f in files if pydicom.dcmread(f).get("InstitutionName") == "X"]
        (raw,) = [f for f in files if f != coerced]
        assert dataset_bytes(raw) == dataset  # bytes as received, untouched


def test_peer_closing_an_idle_association_gets_a_new_one(tmp_path: Path) -> None:
    ref, _dataset = spooled_ct(tmp_path)
    with Hostile(answer_store(0x0000), close_after_response=True) as peer:
        scu = StoreScu(destination(peer.port))
        try:
            assert scu.send(scu.links[0], ref).detail == "0x0000"
            peer.served.wait(5)
            assert scu.send(scu.links[0], ref).detail == "0x0000"
        finally:
            scu.release_idle(0.0)
        assert peer.connections == 2


# -- a scripted peer -----------------------------------------------------------


Script = Callable[["Conn"], None]


class Conn:
    """One accepted connection of :class:`Hostile`, read PDU by PDU."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def pdu(self) -> tuple[int, bytes]:
        head = self._exactly(6)
        pdu_type, length = _dimse.parse_pdu_header(head)
        return pdu_type, self._exactly(length)

    def _exactly(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def associate_rq(self) -> A_ASSOCIATE:
        pdu_type, body = self.pdu()
        assert pdu_type == _dimse.A_ASSOCIATE_RQ
        pdu = AssociateRqPdu()
        pdu.decode(bytes([pdu_type, 0]) + len(body).to_bytes(4, "big") + body)
        return pdu.to_primitive()

    def accept(self, max_pdu: int = 16384, refuse: bool = False) -> A_ASSOCIATE:
        rq = self.associate_rq()
        ac = A_ASSOCIATE()
        ac.application_context_name = rq.application_context_name
        ac.calling_ae_title = rq.calling_ae_title
        ac.called_ae_title = rq.called_ae_title
        ac.result = 0x00
        ac.result_source = 0x01
        results = []
        for cx in rq.presentation_context_definition_list:
            cx.result = 0x03 if refuse else 0x00
            cx.transfer_syntax = cx.transfer_syntax[:1]
            results.append(cx)
        ac.presentation_context_definition_results_list = results
        length = MaximumLengthNotification()
        length.maximum_length_received = max_pdu
        ac.user_information = [length]
        pdu = AssociateAcPdu()
        pdu.from_primitive(ac)
        self.sock.sendall(pdu.encode())
        return rq

    def request(self) -> tuple[int, Command, bytes, list[int]]:
        """The next DIMSE message: (context ID, command, data set, each PDU's length)."""
        command: Command | None = None
        parts: list[bytes] = []
        data: list[bytes] = []
        lengths = []
        while True:
            pdu_type, body = self.pdu()
            assert pdu_type == _dimse.P_DATA_TF, pdu_type
            lengths.append(len(body))
            for cid, control, piece in _dimse.parse_pdvs(body):
                if control & 1:
                    parts.append(bytes(piece))
                    if control & 2:
                        command = _dimse.decode_command(b"".join(parts))
                        if not command.has_dataset:
                            return cid, command, b"", lengths
                else:
                    data.append(bytes(piece))
                    if control & 2:
                        assert command is not None
                        return cid, command, b"".join(data), lengths

    def respond(self, context_id: int, command: Command, status: int, max_pdu: int = 0) -> None:
        for pdu in _dimse.pdata_pdus(context_id, _dimse.store_rsp(command, status), max_pdu):
            self.sock.sendall(pdu)

    def serve_release(self) -> None:
        pdu_type, _body = self.pdu()
        assert pdu_type == _dimse.A_RELEASE_RQ
        self.sock.sendall(_dimse.RELEASE_RP)


class Hostile:
    """A peer on 127.0.0.1 running ``script`` on each connection (in its own thread)."""

    def __init__(self, script: Script, *, close_after_response: bool = False) -> None:
        self.script = script
        self.close_after_response = close_after_response
        self.server = socket.create_server((HOST, 0))
        self.port = int(self.server.getsockname()[1])
        self.connections = 0
        self.errors: list[BaseException] = []
        self.served = threading.Event()
        self.seen: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._stop = False
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Hostile:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        try:
            socket.create_connection((HOST, self.port), timeout=1).close()
        except OSError:
            pass
        self._thread.join(10)
        self.server.close()
        for thread in self._threads:
            thread.join(10)
        assert not self.errors, self.errors

    def _loop(self) -> None:
        while True:
            client, _addr = self.server.accept()
            if self._stop:
                client.close()
                return
            self.connections += 1
            thread = threading.Thread(target=self._run, args=(client,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run(self, client: socket.socket) -> None:
        conn = Conn(client)
        client.settimeout(10)
        try:
            self.script(conn)
            if self.close_after_response:
                return  # ``finally`` closes, then says served (never the other way round)
            while True:  # then until our side closes, answering a release
                pdu_type, _body = conn.pdu()
                if pdu_type == _dimse.A_RELEASE_RQ:
                    client.sendall(_dimse.RELEASE_RP)
        except (EOFError, OSError):
            pass
        except BaseException as exc:  # noqa: BLE001 - reported by __exit__
            self.errors.append(exc)
        finally:
            client.close()
            self.served.set()


def answer_store(
    status: int, *, max_pdu: int = 16384, seen: dict[str, Any] | None = None
) -> Script:
    def script(conn: Conn) -> None:
        conn.accept(max_pdu)
        while True:
            try:
                cid, command, data, lengths = conn.request()
            except EOFError:
                return
            if seen is not None:
                seen.setdefault("requests", []).append((command, data, lengths))
            conn.respond(cid, command, status)
            if status != 0x0000 or seen is None:
                return
            pdu_type, _body = conn.pdu()
            if pdu_type == _dimse.A_RELEASE_RQ:
                conn.sock.sendall(_dimse.RELEASE_RP)
                seen["released"] = True
                return

    return script


@contextmanager
def sending(tmp_path: Path, script: Script, **config: Any) -> Iterator[Callable[[], Any]]:
    ref, _dataset = spooled_ct(tmp_path)
    with Hostile(script) as peer:
        scu = StoreScu(destination(peer.port, **config))
        try:
            yield lambda: scu.send(scu.links[0], ref)
        finally:
            scu.release_idle(0.0)


def test_small_max_pdu_fragments_every_pdu_and_release_is_answered(tmp_path: Path) -> None:
    ref, dataset = spooled_ct(tmp_path)
    seen: dict[str, Any] = {}
    with Hostile(answer_store(0x0000, max_pdu=128, seen=seen)) as peer:
        scu = StoreScu(destination(peer.port))
        try:
            assert scu.send(scu.links[0], ref).detail == "0x0000"
        finally:
            scu.release_idle(0.0)
        peer.served.wait(5)
    ((command, data, lengths),) = seen["requests"]
    assert data == dataset
    assert max(lengths) <= 128 and len(lengths) > len(dataset) // 128
    assert command.command_field == _dimse.C_STORE_RQ
    assert command.affected_sop_instance_uid == ref.sop_instance_uid
    assert seen["released"]


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (0x0000, "0x0000"),
        (0x0001, "warning 0x0001"),
        (0xB007, "warning 0xB007"),
        (0xA701, TransientDeliveryError),
        (0xA900, PermanentDeliveryError),
        (0xC123, PermanentDeliveryError),
        (0x0122, PermanentDeliveryError),
    ],
)
def test_status_verdicts(tmp_path: Path, status: int, outcome: Any) -> None:
    with sending(tmp_path, answer_store(status)) as send:
        if isinstance(outcome, str):
            assert send().detail == outcome
        else:
            with pytest.raises(outcome, match=f"0x{status:04X}"):
                send()


def reject(result: int) -> Script:
    def script(conn: Conn) -> None:
        conn.associate_rq()
        rj = A_ASSOCIATE()
        rj.result, rj.result_source, rj.diagnostic = result, 0x01, 0x07
        pdu = AssociateRjPdu()
        pdu.from_primitive(rj)
        conn.sock.sendall(pdu.encode())

    return script


def test_rejections(tmp_path: Path) -> None:
    with sending(tmp_path, reject(0x01)) as send, pytest.raises(PermanentDeliveryError) as perm:
        send()
    assert "rejected the association" in str(perm.value)
    assert "Called AE title not recognised" in str(perm.value)
    with sending(tmp_path, reject(0x02)) as send, pytest.raises(TransientDeliveryError) as tr:
        send()
    assert "rejected the association" in str(tr.value)


def test_context_not_accepted_is_permanent(tmp_path: Path) -> None:
    def script(conn: Conn) -> None:
        conn.accept(refuse=True)

    with sending(tmp_path, script) as send:
        for _ in range(2):  # and again on the same association: not proposed again
            with pytest.raises(PermanentDeliveryError, match="does not accept SOP class"):
                send()


def test_abort_instead_of_association(tmp_path: Path) -> None:
    def script(conn: Conn) -> None:
        conn.associate_rq()
        conn.sock.sendall(_dimse.abort_pdu(0x02, 0x00))

    with sending(tmp_path, script) as send:
        with pytest.raises(TransientDeliveryError, match="aborted the association"):
            send()


def test_no_answer_to_the_association_request(tmp_path: Path) -> None:
    def script(conn: Conn) -> None:
        conn.associate_rq()
        pdu_type, _body = conn.pdu()  # our A-ABORT after acse_timeout
        assert pdu_type == _dimse.A_ABORT

    with sending(tmp_path, script, acse_timeout=0.3) as send:
        with pytest.raises(TransientDeliveryError, match=r"no answer to A-ASSOCIATE-RQ within 0.3"):
            send()


def test_connection_refused_is_transient(tmp_path: Path) -> None:
    ref, _dataset = spooled_ct(tmp_path)
    scu = StoreScu(destination(free_port(HOST)))
    with pytest.raises(TransientDeliveryError, match="cannot connect: Connection refused"):
        scu.send(scu.links[0], ref)


@pytest.mark.parametrize("behaviour", ["abort", "silence", "close mid-PDU", "release", "garbage"])
def test_no_response_is_transient(tmp_path: Path, behaviour: str) -> None:
    aborted: list[bool] = []

    def script(conn: Conn) -> None:
        conn.accept()
        cid, command, _data, _lengths = conn.request()
        if behaviour == "abort":
            conn.sock.sendall(_dimse.abort_pdu(0x02, 0x00))
        elif behaviour == "silence":
            pdu_type, _body = conn.pdu()
            aborted.append(pdu_type == _dimse.A_ABORT)
        elif behaviour == "close mid-PDU":
            rsp = _dimse.pdata_pdus(cid, _dimse.store_rsp(command, 0), 0)[0]
            conn.sock.sendall(rsp[: len(rsp) // 2])
            conn.sock.shutdown(socket.SHUT_WR)
        elif behaviour == "release":
            conn.sock.sendall(_dimse.RELEASE_RQ)
            pdu_type, _body = conn.pdu()
            aborted.append(pdu_type == _dimse.A_RELEASE_RP)
        else:  # a response to another message
            conn.respond(cid, Command(command_field=1, message_id=999), 0)
            pdu_type, _body = conn.pdu()
            aborted.append(pdu_type == _dimse.A_ABORT)

    with sending(tmp_path, script, dimse_timeout=0.3) as send:
        with pytest.raises(TransientDeliveryError) as err:
            send()
    if behaviour == "garbage":
        assert "C-STORE failed" in str(err.value) and "not 1" in str(err.value)
    else:
        assert "no C-STORE response" in str(err.value)
    if behaviour in ("silence", "release", "garbage"):
        assert aborted == [True]


# -- the close after our last PDU, over TLS too ---------------------------------


def test_over_tls_a_protocol_abort_reaches_the_peer_then_a_clean_close(tmp_path: Path) -> None:
    """The requestor aborts a P-DATA-TF announcing more than its Maximum Length Received
    while more bytes are on the way: over TLS as over TCP, it half-closes and drains
    (``_pdu_io.PduSocket.linger``), so the peer finishes sending, reads the A-ABORT
    then an end of stream, not a reset (a close with unread data sends RST, which can
    lose the A-ABORT)."""
    import ssl

    from dicom_router._dimse import ProtocolError
    from dicom_router._requestor import Requestor
    from tests._pki import make_pki

    pki = make_pki(tmp_path / "pki")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(pki.server_cert, pki.server_key)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(pki.ca)
    listener = socket.create_server((HOST, 0))
    seen: dict[str, Any] = {}

    def peer() -> None:
        raw, _ = listener.accept()
        with server_ctx.wrap_socket(raw, server_side=True) as tls:
            tls.settimeout(10)
            conn = Conn(tls)
            conn.accept(max_pdu=16384)
            conn.request()
            try:
                # a P-DATA-TF announcing 8 MiB (over the requestor's 16 kB), then 4 MiB of
                # it: more than the socket buffers hold, so most arrives after the abort
                tls.sendall(_dimse.pdu_header(_dimse.P_DATA_TF, 8 << 20) + bytes(4 << 20))
                seen["pdu"] = conn.pdu()
                seen["end"] = tls.recv(10)
            except OSError as exc:
                seen["error"] = exc

    thread = threading.Thread(target=peer, daemon=True)
    thread.start()
    try:
        ct = ("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1")
        requestor = Requestor.open(
            HOST,
            int(listener.getsockname()[1]),
            [ct],
            calling_ae="EAI",
            called_ae="PACS",
            max_pdu=16384,
            connect_timeout=5,
            acse_timeout=5,
            network_timeout=5,
            ssl_context=client_ctx,
        )
        with pytest.raises(ProtocolError, match="announcing 8388608 bytes"):
            requestor.store(ct, "1.2.3", b"\0" * 64, 5)
        assert not requestor.established
        thread.join(10)
        assert not thread.is_alive()
    finally:
        listener.close()
    assert "error" not in seen, seen
    assert seen["pdu"] == (_dimse.A_ABORT, bytes([0, 0, 2, 2])) and seen["end"] == b""


# -- eai dicom echo|send: the production requestor ------------------------------


def test_the_cli_speaks_through_the_forwarders_requestor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``eai dicom echo`` and ``send`` open their associations with the requestor the
    forwarder uses (``dicom_router._requestor.Requestor``), not with pynetdicom's AE."""
    from click.testing import CliRunner

    from dicom_router._requestor import Requestor
    from eai.cli import cli
    from standins.dicom import make_ct_series

    opened: list[list[tuple[str, str]]] = []
    real_open = Requestor.open.__func__  # type: ignore[attr-defined]

    def counting_open(cls: type[Requestor], host: str, port: int, contexts: Any, **kw: Any) -> Any:
        opened.append(list(contexts))
        return real_open(cls, host, port, contexts, **kw)

    monkeypatch.setattr(Requestor, "open", classmethod(counting_open))
    series = make_ct_series(2, tmp_path / "ct")
    with StoreScp(tmp_path / "out", "PACS") as scp:
        runner = CliRunner()
        result = runner.invoke(cli, ["dicom", "echo", f"PACS@{HOST}:{scp.port}"])
        assert result.exit_code == 0 and "0x0000" in result.output, result.output
        assert opened == [[("1.2.840.10008.1.1", "1.2.840.10008.1.2")]]
        result = runner.invoke(
            cli, ["dicom", "send", f"PACS@{HOST}:{scp.port}", str(tmp_path / "ct")]
        )
        assert result.exit_code == 0 and "2 sent, 0 failed" in result.output, result.output
        assert len(opened) == 2  # one association for both files
        assert sorted(dataset_bytes(f) for f in scp.wait_files(2)) == sorted(
            dataset_bytes(f) for f in series
        )
