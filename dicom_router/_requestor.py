"""A lean DICOM association requestor for C-STORE and C-ECHO: one blocking socket, no thread.

Touches: network (one outbound connection, optionally TLS).

In place of pynetdicom's requestor (DUL thread, association reactor thread,
event queues, DIMSE primitives, pydicom encoding of every command set),
:class:`Requestor` is driven by the caller's thread (PS3.8 state machine,
requestor side only). It reads and writes PDUs through
:class:`dicom_router._pdu_io.PduSocket` (as the acceptor does), negotiates with
:mod:`dicom_router._acse` and speaks DIMSE with :mod:`dicom_router._dimse`:

1. :meth:`Requestor.open`: TCP connection (``TCP_NODELAY``) within
   ``connect_timeout``, the TLS handshake if any (same time limit), then the
   A-ASSOCIATE-RQ proposing the given (SOP class, transfer syntax) pairs, one
   presentation context each; the A-ASSOCIATE-AC or -RJ within
   ``acse_timeout`` (:class:`Rejected`; an A-ABORT or the connection closed:
   :class:`Aborted`; no answer: :class:`NoResponse`, after an A-ABORT);
2. :meth:`Requestor.store` / :meth:`Requestor.echo`: the C-STORE-RQ command
   and data set (or the C-ECHO-RQ) as P-DATA-TF PDUs fragmented to the peer's
   Maximum Length Received (:func:`dicom_router._dimse.pdata_message`, one
   ``sendall``), then the response, reassembled by
   :class:`dicom_router._dimse.Message`, within ``dimse_timeout``
   (:class:`NoResponse`); an A-ABORT or the connection closed meanwhile:
   :class:`Aborted`; an A-RELEASE-RQ from the peer is answered A-RELEASE-RP
   and the connection closed (:class:`Aborted`); anything unexpected (another
   PDU type, a malformed or foreign response) is answered A-ABORT
   (:class:`dicom_router._dimse.ProtocolError`);
3. :meth:`Requestor.release`: A-RELEASE-RQ, then the A-RELEASE-RP within
   ``acse_timeout`` (else A-ABORT), then close; :meth:`Requestor.abort`:
   A-ABORT and close.

Socket writes are limited by ``network_timeout``. Between operations nothing
reads the socket: :meth:`Requestor.alive` looks (without waiting) whether the
peer has sent something meanwhile (release, abort, close), which ends the
association. Errors of the socket itself (refused, reset, TLS) are raised as
they are (:class:`OSError`, :class:`ssl.SSLError`).
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Sequence

from dicom_router import _acse, _dimse
from dicom_router._acse import MAX_CONTEXTS, Context
from dicom_router._dimse import Message, ProtocolError
from dicom_router._pdu_io import Closed, PduSocket

__all__ = [
    "Aborted",
    "Context",
    "MAX_CONTEXTS",
    "NoResponse",
    "Rejected",
    "Requestor",
    "RequestorError",
]

OTHER_PDU_MAX = 1 << 20
"""Longest PDU accepted from the peer other than P-DATA-TF (an A-ASSOCIATE-AC is small)."""
_READAHEAD = 1024
"""Bytes asked for with each PDU header: a whole response (~100 bytes) in one read."""
_MAX_RESPONSE_DATA = 1 << 20
"""A data set after a response is read and dropped past this many bytes."""


class RequestorError(Exception):
    """The association failed (the peer's doing); the message says how."""


class Rejected(RequestorError):
    """A-ASSOCIATE-RJ: ``result`` 1 permanent, 2 transient (PS3.8 9.3.4)."""

    def __init__(self, result: int, source: int, reason: int, text: str) -> None:
        super().__init__(text)
        self.result = result
        self.source = source
        self.reason = reason

    @property
    def permanent(self) -> bool:
        return self.result == 0x01


class Aborted(RequestorError):
    """A-ABORT from the peer, the connection closed, or released by the peer."""


class NoResponse(RequestorError):
    """No answer within ``acse_timeout`` or ``dimse_timeout`` (the association was aborted)."""


class Requestor:
    """One established association (built by :meth:`open`); one operation at a time."""

    def __init__(
        self,
        sock: socket.socket,
        accepted: dict[Context, int],
        peer_max_pdu: int,
        *,
        max_pdu: int,
        acse_timeout: float,
        network_timeout: float,
    ) -> None:
        self.io = PduSocket(sock, send_timeout=network_timeout, readahead=_READAHEAD)
        """The connection (:mod:`dicom_router._pdu_io`): PDU input, output, close."""
        self.accepted = accepted
        """Accepted (SOP class, transfer syntax) -> presentation context ID."""
        self.peer_max_pdu = peer_max_pdu
        self.max_pdu = max_pdu
        self.acse_timeout = acse_timeout
        self.network_timeout = network_timeout
        self.established = True
        self._message_id = 0

    @property
    def sock(self) -> socket.socket:
        """The connection's socket (TLS when it is DICOM TLS)."""
        return self.io.sock

    # -- opening -------------------------------------------------------------

    @classmethod
    def open(
        cls,
        host: str,
        port: int,
        contexts: Sequence[Context],
        *,
        calling_ae: str,
        called_ae: str,
        max_pdu: int,
        connect_timeout: float,
        acse_timeout: float,
        network_timeout: float,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> Requestor:
        """Connects and negotiates; raises :class:`Rejected`, :class:`Aborted`,
        :class:`NoResponse`, :class:`ProtocolError` or the socket's :class:`OSError`."""
        rq, proposed = _acse.request(contexts, calling_ae, called_ae, max_pdu)
        sock = socket.create_connection((host, port), timeout=connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if ssl_context is not None:
                sock = ssl_context.wrap_socket(sock, server_hostname=server_hostname or host)
            sock.settimeout(network_timeout)
            requestor = cls(
                sock,
                {},
                0,
                max_pdu=max_pdu,
                acse_timeout=acse_timeout,
                network_timeout=network_timeout,
            )
            requestor.established = False
            requestor._negotiate(rq, proposed)
        except BaseException:
            sock.close()
            raise
        return requestor

    def _negotiate(self, rq: bytes, proposed: dict[int, Context]) -> None:
        self.io.send(rq)
        deadline = time.monotonic() + self.acse_timeout
        try:
            pdu_type, body = self._read_pdu(deadline)
        except TimeoutError:
            self.established = True  # so that abort() sends the A-ABORT
            self.abort()
            raise NoResponse(
                f"no answer to A-ASSOCIATE-RQ within {self.acse_timeout:g} s"
            ) from None
        if pdu_type not in (_dimse.A_ASSOCIATE_AC, _dimse.A_ASSOCIATE_RJ):
            self._protocol_abort(f"PDU type 0x{pdu_type:02X} instead of A-ASSOCIATE-AC")
        answer = _acse.decode_answer(pdu_type, body, proposed)
        if answer.rejection is not None:
            raise Rejected(*answer.rejection)
        self.accepted, self.peer_max_pdu = answer.accepted, answer.peer_max_pdu
        self.established = True

    # -- DIMSE services --------------------------------------------------------

    def store(
        self,
        context: Context,
        sop_instance_uid: str,
        dataset: bytes | bytearray | memoryview,
        dimse_timeout: float,
        *,
        sop_class_uid: str | None = None,
    ) -> int:
        """C-STORE ``dataset`` (encoded in the context's transfer syntax) on the accepted
        ``context``; the response's Status. Raises :class:`Aborted`, :class:`NoResponse`,
        :class:`ProtocolError` or :class:`OSError` (the association is then closed)."""
        message_id = self._next_id()
        command = _dimse.store_rq(message_id, sop_class_uid or context[0], sop_instance_uid)
        return self._request(
            self.accepted[context], message_id, command, dataset, _dimse.C_STORE_RSP, dimse_timeout
        )

    def echo(self, context: Context, dimse_timeout: float) -> int:
        """C-ECHO (PS3.7 9.1.5) on the accepted Verification ``context``; the Status."""
        message_id = self._next_id()
        command = _dimse.echo_rq(message_id)
        return self._request(
            self.accepted[context], message_id, command, None, _dimse.C_ECHO_RSP, dimse_timeout
        )

    def _next_id(self) -> int:
        if not self.established:
            raise Aborted("the association is closed")
        self._message_id = self._message_id % 0xFFFF + 1
        return self._message_id

    def _request(
        self,
        context_id: int,
        message_id: int,
        command: bytes,
        dataset: bytes | bytearray | memoryview | None,
        response_field: int,
        dimse_timeout: float,
    ) -> int:
        try:
            self.io.send(_dimse.pdata_message(context_id, command, dataset, self.peer_max_pdu))
            deadline = time.monotonic() + dimse_timeout
            return self._response(context_id, message_id, deadline, dimse_timeout, response_field)
        except OSError:
            self.close()
            raise

    def _response(
        self,
        context_id: int,
        message_id: int,
        deadline: float,
        dimse_timeout: float,
        response_field: int = _dimse.C_STORE_RSP,
    ) -> int:
        """The Status of the response (``response_field``) to ``message_id`` on
        ``context_id``; a data set following it is read and ignored."""
        message = Message(_MAX_RESPONSE_DATA)
        while True:
            try:
                pdu_type, body = self._read_pdu(deadline)
            except TimeoutError:
                self.abort()
                raise NoResponse(f"nothing within {dimse_timeout:g} s") from None
            if pdu_type != _dimse.P_DATA_TF:
                self._other_pdu(pdu_type)
            try:
                for pdv_context, control, data in _dimse.parse_pdvs(body):
                    if pdv_context != context_id:
                        raise ProtocolError(
                            f"PDV on presentation context {pdv_context}, not {context_id}"
                        )
                    had_command = message.command is not None
                    complete = message.add(pdv_context, control, data)
                    if message.command is not None and not had_command:
                        status = _dimse.response_status(message.command, response_field, message_id)
                    if complete:
                        return status
            except ProtocolError as exc:
                self._protocol_abort(str(exc))

    # -- release, abort ------------------------------------------------------

    def alive(self) -> bool:
        """True if the association is established and the peer sent nothing since the
        last response (no wait); otherwise the association is ended (a release
        answered) and closed."""
        if not self.established:
            return False
        if not self.io.readable():
            return True
        try:
            pdu_type, _body = self._read_pdu(time.monotonic() + 0.1)
            if pdu_type == _dimse.A_RELEASE_RQ:
                self.io.send(_dimse.RELEASE_RP)
        except (OSError, RequestorError, ProtocolError):
            pass
        self.close()
        return False

    def release(self) -> None:
        """A-RELEASE-RQ, the A-RELEASE-RP within ``acse_timeout`` (else A-ABORT), close."""
        if not self.established:
            self.close()
            return
        deadline = time.monotonic() + self.acse_timeout
        try:
            self.io.send(_dimse.RELEASE_RQ)
            while True:
                pdu_type, _body = self._read_pdu(deadline)
                if pdu_type == _dimse.A_RELEASE_RP:
                    break
                if pdu_type == _dimse.A_RELEASE_RQ:  # release collision (PS3.8 7.2.2)
                    self.io.send(_dimse.RELEASE_RP)
                # P-DATA-TF (a late response): discarded while waiting
        except RequestorError:  # aborted or closed by the peer meanwhile
            pass
        except (OSError, ProtocolError):
            self.abort()
            return
        self.close()

    def abort(self) -> None:
        """A-ABORT (service user) and close."""
        if self.established:
            self.io.send_last(_dimse.abort_pdu(0x00, 0x00))
        self.close()

    def close(self) -> None:
        self.established = False
        self.io.close()

    # -- reading -------------------------------------------------------------

    def _read_pdu(self, deadline: float) -> tuple[int, memoryview]:
        """The next PDU (type, variable field) by ``deadline`` (else :class:`TimeoutError`);
        an A-ABORT or the connection closed: closes and raises :class:`Aborted`."""
        try:
            pdu_type, length = self.io.read_header(deadline)
        except Closed:
            self.close()
            raise Aborted("the connection was closed") from None
        limit = self.max_pdu if pdu_type == _dimse.P_DATA_TF else OTHER_PDU_MAX
        if length > limit:
            self._protocol_abort(f"PDU type 0x{pdu_type:02X} announcing {length} bytes")
        try:
            body = self.io.read_body(length, deadline)
        except Closed:
            self.close()
            raise Aborted("the connection was closed inside a PDU") from None
        if pdu_type == _dimse.A_ABORT:
            self.close()
            raise Aborted("A-ABORT from the peer")
        return pdu_type, body

    def _other_pdu(self, pdu_type: int) -> None:
        """A PDU other than P-DATA-TF while waiting for a response."""
        if pdu_type == _dimse.A_RELEASE_RQ:
            try:
                self.io.send(_dimse.RELEASE_RP)
            except OSError:
                pass
            self.close()
            raise Aborted("the peer released the association")
        self._protocol_abort(f"unexpected PDU type 0x{pdu_type:02X}")

    def _protocol_abort(self, text: str) -> None:
        """A-ABORT (service provider, unexpected PDU), close, raise :class:`ProtocolError`."""
        self.io.send_last(_dimse.abort_pdu(0x02, 0x02))
        self.close()
        raise ProtocolError(text)
