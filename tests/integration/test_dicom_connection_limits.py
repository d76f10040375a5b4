"""Who may hold the DICOM SCP's connections, over real sockets on 127.0.0.x.

Silent or trickling sockets must not lock the modalities out (issue 16, point 6):
address allow-list at accept, per-address cap, ARTIM from the accept (TLS
handshake included), eviction of the connection negotiating for the longest.
Clients bind source addresses 127.0.0.2, .3, ... (all loopback on Linux).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError
from pynetdicom.pdu import A_ASSOCIATE_RQ as AssociateRqPdu
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    MaximumLengthNotification,
)
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from dicom_router import _dimse
from dicom_router._acceptor import Acceptor, StoreRequest, Verdict
from dicom_router._dimse import Command
from dicom_router.scp import _SUPPORTED_CONTEXTS, DicomListener, DicomListenerConfig
from eai.messages import IngestResult, JournalEntry
from eai.net import parse_networks
from tests._pki import Pki, make_pki

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

IMPLICIT_LE = "1.2.840.10008.1.2"


def _store(request: StoreRequest) -> int:
    return 0


def _screen(calling: str, called: str, address: str) -> Verdict | None:
    return None if called == "SCP" else (0x01, 0x01, 0x07)


@contextlib.contextmanager
def acceptor(**kwargs: object) -> Iterator[Acceptor]:
    server = Acceptor(
        name="imaging",
        host="127.0.0.1",
        port=0,
        contexts=_SUPPORTED_CONTEXTS,
        screen=_screen,
        on_store=_store,
        **kwargs,  # type: ignore[arg-type]
    )
    server.start()
    try:
        yield server
    finally:
        server.stop(0.5)


def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))


def associate_rq() -> bytes:
    rq = A_ASSOCIATE()
    rq.application_context_name = "1.2.840.10008.3.1.1.1"
    rq.calling_ae_title = "MODALITY"
    rq.called_ae_title = "SCP"
    cx_list = []
    from pynetdicom import build_context

    cx = build_context(str(Verification), [IMPLICIT_LE])
    cx.context_id = 1
    cx_list.append(cx)
    rq.presentation_context_definition_list = cx_list
    max_len = MaximumLengthNotification()
    max_len.maximum_length_received = 0
    impl = ImplementationClassUIDNotification()
    impl.implementation_class_uid = "1.2.3.4"
    rq.user_information = [max_len, impl]
    pdu = AssociateRqPdu()
    pdu.from_primitive(rq)
    return bytes(pdu.encode())


def read_pdu(sock: socket.socket) -> tuple[int, bytes]:
    """(PDU type, whole PDU); (-1, b"") when the server closed the connection."""
    data = b""
    while len(data) < 6 or len(data) < 6 + int.from_bytes(data[2:6], "big"):
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return -1, b""
        data += chunk
    return data[0], data


def associate(port: int, source: str = "127.0.0.1") -> socket.socket:
    """An established association (asserted), ready for a C-ECHO."""
    sock = connect(port, source)
    sock.sendall(associate_rq())
    assert read_pdu(sock)[0] == _dimse.A_ASSOCIATE_AC
    return sock


def echo(sock: socket.socket, message_id: int = 1) -> int:
    rq = Command(
        command_field=_dimse.C_ECHO_RQ,
        message_id=message_id,
        affected_sop_class_uid=str(Verification),
    )
    sock.sendall(b"".join(_dimse.pdata_pdus(1, _dimse.encode_command(rq), 0)))
    pdu_type, raw = read_pdu(sock)
    assert pdu_type == _dimse.P_DATA_TF
    ((_cid, _control, data),) = _dimse.parse_pdvs(raw[6:])
    return _dimse.decode_command(data).status


def closed_by_server(sock: socket.socket, timeout: float = 5.0) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(64) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


# -- tests -----------------------------------------------------------------------


def test_silent_sockets_filling_the_listener_do_not_lock_out_a_modality() -> None:
    with acceptor(max_associations=2, max_pending=4, max_per_peer=2, acse_timeout=30) as server:
        established = associate(server.port, "127.0.0.5")
        silent = [connect(server.port, src) for src in ("127.0.0.2", "127.0.0.2", "127.0.0.3")]
        silent.append(connect(server.port, "127.0.0.3"))
        wait_until(lambda: len(server.active_associations) == 5)
        # Four silent connections fill max_pending; a modality still gets in ...
        modality = associate(server.port, "127.0.0.1")
        assert echo(modality) == 0
        # ... in the place of the oldest silent one, not of an established association.
        assert closed_by_server(silent[0])
        assert echo(established) == 0
        # A second wave of silent sockets (two addresses) cannot evict the associations either.
        more = [connect(server.port, src) for src in ("127.0.0.6", "127.0.0.6", "127.0.0.7")]
        more.append(connect(server.port, "127.0.0.7"))
        for sock in silent[1:]:
            assert closed_by_server(sock)
        assert echo(modality, 2) == 0 and echo(established, 2) == 0
        assert server.admission.counts["evicted"] == 4
        for sock in (established, modality, *silent, *more):
            sock.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def trickle(port: int, data: bytes) -> float | None:
    """Sends ``data`` one byte a second; seconds until the server closed (None: it did not)."""
    sock = connect(port)
    started = time.monotonic()
    try:
        for byte in data:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                return time.monotonic() - started
            if closed_by_server(sock, timeout=1.0):
                return time.monotonic() - started
        return None
    finally:
        sock.close()


def test_trickling_one_byte_a_second_is_closed_at_artim_tls_handshake_included(
    pki: Pki,
) -> None:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    with acceptor(ssl_context=ctx, acse_timeout=1.5, network_timeout=30) as server:
        # A TLS record header announcing a ClientHello, then one byte a second: each
        # byte arrives well within network_timeout; ARTIM (from the accept) closes it.
        elapsed = trickle(server.port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        assert elapsed is not None and elapsed < 6.0
        wait_until(lambda: not server.active_associations)
    # Plain TCP: the A-ASSOCIATE-RQ trickled is closed the same way (ARTIM from the accept).
    with acceptor(acse_timeout=1.5, network_timeout=30) as server:
        elapsed = trickle(server.port, associate_rq()[:10])
        assert elapsed is not None and elapsed < 6.0
        # A silent one too; a modality that talks at once is served, and stays.
        with connect(server.port) as silent:
            assert closed_by_server(silent)
        modality = associate(server.port)
        time.sleep(2.0)  # past acse_timeout
        assert echo(modality) == 0
        modality.close()


def test_an_address_outside_allowed_networks_is_closed_unread(
    caplog: pytest.LogCaptureFixture,
) -> None:
    networks = parse_networks(["127.0.0.2/32", "10.0.0.0/8"])
    with caplog.at_level(logging.WARNING), acceptor(allowed_networks=networks) as server:
        outsider = connect(server.port, "127.0.0.3")
        with contextlib.suppress(OSError):
            outsider.sendall(associate_rq())
        assert read_pdu(outsider) == (-1, b"")  # no A-ASSOCIATE-RJ: nothing was read
        outsider.close()
        insider = associate(server.port, "127.0.0.2")
        assert echo(insider) == 0
        insider.close()
        assert server.admission.counts["refused_network"] == 1
    [record] = [r for r in caplog.records if "refused" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert "imaging" in record.getMessage() and "127.0.0.3" in record.getMessage()


def test_one_address_holds_at_most_max_associations_per_peer() -> None:
    with acceptor(max_associations=8, max_per_peer=2) as server:
        first = associate(server.port, "127.0.0.2")
        second = connect(server.port, "127.0.0.2")  # negotiating counts too
        wait_until(lambda: len(server.active_associations) == 2)
        with connect(server.port, "127.0.0.2") as third:
            assert closed_by_server(third)
        other = associate(server.port, "127.0.0.3")
        assert echo(other) == 0 and echo(first) == 0
        assert server.admission.counts["refused_per_peer"] == 1
        second.close()
        wait_until(lambda: server.admission.peers("127.0.0.2") == 1)
        again = associate(server.port, "127.0.0.2")
        assert echo(again) == 0
        for sock in (first, other, again):
            sock.close()


async def _ingest(entry: JournalEntry) -> IngestResult:
    return IngestResult(1)


def test_the_listener_config_reaches_the_acceptor(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not an IP address or network"):
        DicomListenerConfig.model_validate(
            {
                "name": "img",
                "ae_title": "SCP",
                "bind": "127.0.0.1:0",
                "spool_dir": str(tmp_path),
                "allowed_callers": [{"ae_title": "MODALITY"}],
                "allowed_networks": ["pacs.chu-x.local"],
            }
        )
    config = DicomListenerConfig.model_validate(
        {
            "name": "img",
            "ae_title": "SCP",
            "bind": "127.0.0.1:0",
            "spool_dir": str(tmp_path / "spool"),
            "allowed_callers": [{"ae_title": "MODALITY"}],
            "allowed_networks": ["127.0.0.2"],
            "max_associations_per_peer": 3,
        }
    )
    assert DicomListenerConfig.model_fields["max_associations_per_peer"].default == 8

    async def scenario() -> None:
        listener = DicomListener(config, _ingest)
        await listener.start()
        try:
            port = listener.port
            outsider, insider = await asyncio.to_thread(
                lambda: (connect(port, "127.0.0.1"), associate(port, "127.0.0.2"))
            )
            assert await asyncio.to_thread(closed_by_server, outsider)
            assert await asyncio.to_thread(echo, insider) == 0
            outsider.close()
            insider.close()
        finally:
            await listener.stop(0.5)

    asyncio.run(scenario())
