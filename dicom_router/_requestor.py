"""A lean DICOM association requestor for C-STORE: one blocking socket, no thread of its own.

Touches: network (one outbound connection, optionally TLS).

In place of pynetdicom's requestor (DUL thread, association reactor thread,
event queues, DIMSE primitives, pydicom encoding of every command set),
:class:`Requestor` is driven by the caller's thread (PS3.8 state machine,
requestor side only):

1. :meth:`Requestor.open`: TCP connection (``TCP_NODELAY``) within
   ``connect_timeout``, the TLS handshake if any (same time limit), then the
   A-ASSOCIATE-RQ (encoded by ``pynetdicom.pdu``) proposing the given
   (SOP class, transfer syntax) pairs, one presentation context each; the
   A-ASSOCIATE-AC or -RJ within ``acse_timeout``, decoded by ``pynetdicom.pdu``
   (:class:`Rejected`; an A-ABORT or the connection closed: :class:`Aborted`;
   no answer: :class:`NoResponse`, after an A-ABORT);
2. :meth:`Requestor.store`: the C-STORE-RQ command and data set as P-DATA-TF
   PDUs fragmented to the peer's Maximum Length Received
   (:func:`dicom_router._dimse.pdata_message`, one ``sendall``), then the
   C-STORE-RSP within ``dimse_timeout`` (:class:`NoResponse`); an A-ABORT or
   the connection closed meanwhile: :class:`Aborted`; an A-RELEASE-RQ from the
   peer is answered A-RELEASE-RP and the connection closed (:class:`Aborted`);
   anything unexpected (another PDU type, a malformed or foreign response) is
   answered A-ABORT (:class:`dicom_router._dimse.ProtocolError`);
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

import select
import socket
import ssl
import time
from collections.abc import Sequence
from typing import cast

from pydicom.uid import UID
from pynetdicom import (
    PYNETDICOM_IMPLEMENTATION_UID,
    PYNETDICOM_IMPLEMENTATION_VERSION,
    build_context,
)
from pynetdicom._globals import APPLICATION_CONTEXT_NAME
from pynetdicom.pdu import A_ASSOCIATE_AC as AssociateAcPdu
from pynetdicom.pdu import A_ASSOCIATE_RJ as AssociateRjPdu
from pynetdicom.pdu import A_ASSOCIATE_RQ as AssociateRqPdu
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    ImplementationVersionNameNotification,
    MaximumLengthNotification,
)

from dicom_router import _dimse
from dicom_router._dimse import ProtocolError

__all__ = ["Aborted", "Context", "NoResponse", "Rejected", "Requestor", "RequestorError"]

Context = tuple[str, str]
"""(SOP Class UID, Transfer Syntax UID): one presentation context proposed."""

MAX_CONTEXTS = 128
"""Presentation context IDs are odd, 1..255 (PS3.8 9.3.2.2)."""
OTHER_PDU_MAX = 1 << 20
"""Longest PDU accepted from the peer other than P-DATA-TF (an A-ASSOCIATE-AC is small)."""
_CLOSE_WAIT = 1.0
"""How long a closing connection waits for the peer to close its side."""


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
        self.sock = sock
        self.accepted = accepted
        """Accepted (SOP class, transfer syntax) -> presentation context ID."""
        self.peer_max_pdu = peer_max_pdu
        self.max_pdu = max_pdu
        self.acse_timeout = acse_timeout
        self.network_timeout = network_timeout
        self.established = True
        self._message_id = 0
        self._spare = b""

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
        :class:`ProtocolError` or the socket's :class:`OSError`."""
        if not 0 < len(contexts) <= MAX_CONTEXTS:
            raise ValueError(f"{len(contexts)} presentation contexts (1 to {MAX_CONTEXTS})")
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
            requestor._negotiate(contexts, calling_ae, called_ae)
        except BaseException:
            sock.close()
            raise
        return requestor

    def _negotiate(self, contexts: Sequence[Context], calling_ae: str, called_ae: str) -> None:
        proposed: dict[int, Context] = {}
        rq = A_ASSOCIATE()
        rq.application_context_name = UID(APPLICATION_CONTEXT_NAME)
        rq.calling_ae_title = calling_ae
        rq.called_ae_title = called_ae
        definitions = []
        for i, (sop_class, syntax) in enumerate(contexts):
            cx = build_context(sop_class, syntax)
            cx.context_id = 2 * i + 1
            proposed[2 * i + 1] = (sop_class, syntax)
            definitions.append(cx)
        rq.presentation_context_definition_list = definitions
        max_length = MaximumLengthNotification()
        max_length.maximum_length_received = self.max_pdu
        impl_uid = ImplementationClassUIDNotification()
        impl_uid.implementation_class_uid = PYNETDICOM_IMPLEMENTATION_UID
        impl_name = ImplementationVersionNameNotification()
        impl_name.implementation_version_name = PYNETDICOM_IMPLEMENTATION_VERSION
        rq.user_information = [max_length, impl_uid, impl_name]
        pdu = AssociateRqPdu()
        pdu.from_primitive(rq)
        self.sock.sendall(pdu.encode())

        deadline = time.monotonic() + self.acse_timeout
        try:
            pdu_type, body = self._read_pdu(deadline)
        except TimeoutError:
            self.established = True  # so that abort() sends the A-ABORT
            self.abort()
            raise NoResponse(
                f"no answer to A-ASSOCIATE-RQ within {self.acse_timeout:g} s"
            ) from None
        raw = _dimse.pdu_header(pdu_type, len(body)) + bytes(body)
        if pdu_type == _dimse.A_ASSOCIATE_RJ:
            rj = _decode(AssociateRjPdu(), raw, "A-ASSOCIATE-RJ")
            text = f"{rj.result_str}, {rj.source_str}: {rj.reason_str}"
            raise Rejected(
                int(rj.result or 0), int(rj.result_source or 0), int(rj.diagnostic or 0), text
            )
        if pdu_type != _dimse.A_ASSOCIATE_AC:
            self._protocol_abort(f"PDU type 0x{pdu_type:02X} instead of A-ASSOCIATE-AC")
        ac = _decode(AssociateAcPdu(), raw, "A-ASSOCIATE-AC")
        for item in ac.user_information:
            if isinstance(item, MaximumLengthNotification):
                self.peer_max_pdu = int(item.maximum_length_received or 0)
        for cx in ac.presentation_context_definition_results_list:
            wanted = proposed.get(cast(int, cx.context_id))
            if wanted is None or cx.result != 0x00 or not cx.transfer_syntax:
                continue
            if str(cx.transfer_syntax[0]) == wanted[1]:
                self.accepted[wanted] = cast(int, cx.context_id)
        self.established = True

    # -- C-STORE -------------------------------------------------------------

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
        if not self.established:
            raise Aborted("the association is closed")
        context_id = self.accepted[context]
        self._message_id = self._message_id % 0xFFFF + 1
        message_id = self._message_id
        command = _dimse.store_rq(message_id, sop_class_uid or context[0], sop_instance_uid)
        try:
            self.sock.settimeout(self.network_timeout)
            self.sock.sendall(_dimse.pdata_message(context_id, command, dataset, self.peer_max_pdu))
            deadline = time.monotonic() + dimse_timeout
            return self._response(context_id, message_id, deadline, dimse_timeout)
        except OSError:
            self.close()
            raise

    def _response(
        self, context_id: int, message_id: int, deadline: float, dimse_timeout: float
    ) -> int:
        """The Status of the C-STORE-RSP to ``message_id`` on ``context_id``."""
        size = 0
        parts: list[bytes] = []
        command: _dimse.Command | None = None
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
                    if control & 0x01:
                        if command is not None:
                            raise ProtocolError("command fragment after the last one")
                        size += len(data)
                        if size > _dimse.MAX_COMMAND:
                            raise ProtocolError(f"command set longer than {_dimse.MAX_COMMAND}")
                        parts.append(bytes(data))
                        if control & 0x02:
                            command = _dimse.decode_command(b"".join(parts))
                            status = _dimse.response_status(command, _dimse.C_STORE_RSP, message_id)
                            if not command.has_dataset:
                                return status
                    elif command is None:
                        raise ProtocolError("data set fragment before the response")
                    elif control & 0x02:  # a data set after a C-STORE-RSP: read, ignored
                        return _dimse.response_status(command, _dimse.C_STORE_RSP, message_id)
            except ProtocolError as exc:
                self._protocol_abort(str(exc))

    # -- release, abort ------------------------------------------------------

    def alive(self) -> bool:
        """True if the association is established and the peer sent nothing since the
        last response (no wait); otherwise the association is ended (a release
        answered) and closed."""
        if not self.established:
            return False
        pending = isinstance(self.sock, ssl.SSLSocket) and self.sock.pending() > 0
        if not pending and not self._spare:
            try:
                poller = select.poll()
                poller.register(self.sock, select.POLLIN)
                if not poller.poll(0):
                    return True
            except (OSError, ValueError):
                pass
        try:
            pdu_type, _body = self._read_pdu(time.monotonic() + 0.1)
            if pdu_type == _dimse.A_RELEASE_RQ:
                self._send(_dimse.RELEASE_RP)
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
            self._send(_dimse.RELEASE_RQ)
            while True:
                pdu_type, _body = self._read_pdu(deadline)
                if pdu_type == _dimse.A_RELEASE_RP:
                    break
                if pdu_type == _dimse.A_RELEASE_RQ:  # release collision (PS3.8 7.2.2)
                    self._send(_dimse.RELEASE_RP)
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
            try:
                self.sock.settimeout(self.network_timeout)
                self._send(_dimse.abort_pdu(0x00, 0x00))
            except OSError:
                pass
            self._linger()
        self.close()

    def close(self) -> None:
        self.established = False
        try:
            self.sock.close()
        except OSError:
            pass

    # -- reading and writing -------------------------------------------------

    def _send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _recv(self, size: int, deadline: float) -> bytes:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        self.sock.settimeout(left)
        data = self.sock.recv(size)
        if not data:
            self.close()
            raise Aborted("the connection was closed")
        return data

    def _read_pdu(self, deadline: float) -> tuple[int, memoryview]:
        """The next PDU (type, variable field) by ``deadline`` (else :class:`TimeoutError`);
        an A-ABORT closes and raises :class:`Aborted`."""
        buf = bytearray(self._spare)
        self._spare = b""
        while len(buf) < _dimse.PDU_HEADER:
            buf += self._recv(65536, deadline)
        pdu_type, length = _dimse.parse_pdu_header(buf[: _dimse.PDU_HEADER])
        limit = self.max_pdu if pdu_type == _dimse.P_DATA_TF else OTHER_PDU_MAX
        if length > limit:
            self._protocol_abort(f"PDU type 0x{pdu_type:02X} announcing {length} bytes")
        end = _dimse.PDU_HEADER + length
        if len(buf) < end:
            whole = bytearray(end)
            whole[: len(buf)] = buf
            view = memoryview(whole)
            got = len(buf)
            while got < end:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                self.sock.settimeout(left)
                n = self.sock.recv_into(view[got:])
                if n == 0:
                    self.close()
                    raise Aborted("the connection was closed inside a PDU")
                got += n
            buf = whole
        else:
            self._spare = bytes(buf[end:])
        if pdu_type == _dimse.A_ABORT:
            self.close()
            raise Aborted("A-ABORT from the peer")
        return pdu_type, memoryview(buf)[_dimse.PDU_HEADER : end]

    def _other_pdu(self, pdu_type: int) -> None:
        """A PDU other than P-DATA-TF while waiting for a response."""
        if pdu_type == _dimse.A_RELEASE_RQ:
            try:
                self._send(_dimse.RELEASE_RP)
            except OSError:
                pass
            self.close()
            raise Aborted("the peer released the association")
        self._protocol_abort(f"unexpected PDU type 0x{pdu_type:02X}")

    def _protocol_abort(self, text: str) -> None:
        """A-ABORT (service provider, unexpected PDU), close, raise :class:`ProtocolError`."""
        try:
            self.sock.settimeout(self.network_timeout)
            self._send(_dimse.abort_pdu(0x02, 0x02))
        except OSError:
            pass
        self._linger()
        self.close()
        raise ProtocolError(text)

    def _linger(self) -> None:
        """After our last PDU: closes our side and reads until the peer closes its side
        (or :data:`_CLOSE_WAIT`), so that unread data does not turn the close into a
        reset that destroys that PDU."""
        try:
            if isinstance(self.sock, ssl.SSLSocket):
                return  # the TLS layer has its own close; a shutdown would break it
            self.sock.shutdown(socket.SHUT_WR)
            self.sock.settimeout(_CLOSE_WAIT)
            deadline = time.monotonic() + _CLOSE_WAIT
            while time.monotonic() < deadline and self.sock.recv(65536):
                pass
        except OSError:
            pass


def _decode(pdu: AssociateAcPdu | AssociateRjPdu, raw: bytes, what: str) -> A_ASSOCIATE:
    try:
        pdu.decode(raw)
        return pdu.to_primitive()
    except Exception as exc:  # noqa: BLE001 - pynetdicom raises many kinds on bad input
        raise ProtocolError(f"{what} cannot be decoded: {type(exc).__name__}") from None
