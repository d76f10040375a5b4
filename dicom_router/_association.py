"""One accepted DICOM connection, served in its own thread: the acceptor side of PS3.8.

Touches: network (the accepted socket, through :mod:`dicom_router._pdu_io`).

What :mod:`dicom_router._acceptor` (the listener: accept loop, admission,
ARTIM, stop) hands each connection to. :meth:`Association.run`, in the
connection's thread:

1. the TLS handshake, if any, with ``network_timeout`` (in this thread, so a
   silent client stalls only itself);
2. A-ASSOCIATE-RQ within ``acse_timeout`` from the accept (ARTIM; on expiry
   the connection is closed, PS3.8 AA-2), decoded by :mod:`dicom_router._acse`;
   the listener's ``screen`` may refuse it (A-ASSOCIATE-RJ with its verdict),
   as does the limit of ``max_associations`` (transient, service-provider
   presentation related, local-limit-exceeded: PS3.8 9.3.4); presentation
   contexts and SCP/SCU role selection are negotiated by
   :func:`dicom_router._acse.accept`;
3. P-DATA-TF PDUs: command and data set fragments are reassembled by
   :class:`dicom_router._dimse.Message` (the data set as views of the received
   PDUs, not copied); C-ECHO-RQ is answered success, C-STORE-RQ by the
   ``on_store`` callback's status (which may block: spool, journal), any other
   request by a failure response: 0x0211 (unrecognized operation) for other
   commands, 0x0122 (SOP class not supported) for a request on a presentation
   context we did not accept or whose abstract syntax is not its SOP class;
   C-CANCEL-RQ (no response defined) is ignored; a response or malformed PDV /
   command set is answered A-ABORT;
4. A-RELEASE-RQ is answered A-RELEASE-RP, A-ABORT closes, silence for
   ``network_timeout`` (idle, or stalled mid-PDU) is answered A-ABORT, and so
   is a DIMSE message (command and data set) still incomplete ``dimse_timeout``
   after its first PDU: a peer trickling bytes just inside the network timeout
   cannot hold an association for ever.

Memory: a C-STORE data set larger than ``max_dataset`` bytes is not kept: its
fragments are read and dropped, and the request is answered 0xA700 (refused:
out of resources). Every PDU is announced by its header before it is read: a
P-DATA-TF longer than our Maximum Length Received (``max_pdu``), or any other
PDU longer than 1 MiB, is answered A-ABORT and the connection closed without
reading it. Any error ends its own association only. The listener is named
only under ``TYPE_CHECKING`` (a lower layer never imports an upper one).
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydicom.uid import UID
from pynetdicom.presentation import PresentationContext

from dicom_router import _acse, _dimse
from dicom_router._dimse import Command, Message, ProtocolError
from dicom_router._pdu_io import Closed, MessageExpired, PduSocket

if TYPE_CHECKING:
    from dicom_router._acceptor import Acceptor

__all__ = [
    "Association",
    "OTHER_PDU_MAX",
    "REJECT_CALLED_AE",
    "REJECT_CALLING_AE",
    "REJECT_CONGESTION",
    "REJECT_LIMIT",
    "STATUS_OUT_OF_RESOURCES",
    "STATUS_SOP_CLASS_NOT_SUPPORTED",
    "STATUS_UNRECOGNIZED_OPERATION",
    "Screen",
    "StoreHandler",
    "StoreRequest",
    "Verdict",
]

log = logging.getLogger("dicom_router._acceptor")  # the listener's logger, as before the split

Verdict = tuple[int, int, int]
"""An A-ASSOCIATE-RJ's (Result, Source, Reason/Diag.) (PS3.8 9.3.4)."""
REJECT_CALLED_AE: Verdict = (0x01, 0x01, 0x07)
"""Permanent, service-user: called-AE-title-not-recognized."""
REJECT_CALLING_AE: Verdict = (0x01, 0x01, 0x03)
"""Permanent, service-user: calling-AE-title-not-recognized."""
REJECT_CONGESTION: Verdict = (0x02, 0x03, 0x01)
"""Transient, service-provider (presentation): temporary-congestion."""
REJECT_LIMIT: Verdict = (0x02, 0x03, 0x02)
"""Transient, service-provider (presentation): local-limit-exceeded."""

STATUS_SUCCESS = 0x0000
STATUS_SOP_CLASS_NOT_SUPPORTED = 0x0122
STATUS_UNRECOGNIZED_OPERATION = 0x0211
STATUS_HANDLER_FAILED = 0xC211
"""A store callback that raised (pynetdicom's status for a failing handler)."""
STATUS_OUT_OF_RESOURCES = 0xA700
"""Refused: out of resources (PS3.4 Table GG.4-1): here, a data set over ``max_dataset``."""

OTHER_PDU_MAX = 1 << 20
"""Longest non-P-DATA PDU accepted (an A-ASSOCIATE-RQ is a few kB)."""


@dataclass(frozen=True, slots=True)
class StoreRequest:
    """One received C-STORE-RQ with its data set, as given to the store callback."""

    calling_ae: str
    address: tuple[str, int]
    transfer_syntax: UID
    command: Command
    dataset: list[memoryview]
    """The data set's fragments, in order, as views of the received PDUs."""
    size: int


Screen = Callable[[str, str, str], Verdict | None]
"""(calling AE, called AE, peer address) -> None to go on, or the rejection."""
StoreHandler = Callable[[StoreRequest], int]
"""A C-STORE-RQ -> the C-STORE-RSP status; may block; answered after it returns."""


class Association:
    """One connection, served by :meth:`run` in its own thread."""

    def __init__(self, server: Acceptor, sock: socket.socket, address: tuple[str, int]) -> None:
        self.server = server
        self.io = PduSocket(sock)
        """The connection (:mod:`dicom_router._pdu_io`): PDU input, output, close."""
        self.address = address
        self.calling_ae = ""
        self.peer_max_pdu = 0
        self.accepted: dict[int, PresentationContext] = {}
        self.established = False
        self.admitted = False
        self.opened = time.monotonic()
        """When the connection was accepted (ARTIM starts here, PS3.8 AE-5)."""
        self.evicted = ""
        """Why the listener closed it while negotiating ('' when it did not)."""
        self._aborted = False

    @property
    def sock(self) -> socket.socket:
        """The connection's socket (TLS once wrapped)."""
        return self.io.sock

    # -- life cycle --------------------------------------------------------

    def run(self) -> None:
        """Handshake, negotiation, then PDUs until release, abort, timeout or error."""
        try:
            if self._handshake() and self._negotiate():
                self._serve()
        except MessageExpired:
            log.warning(
                "association from %s: DIMSE message not complete within %g s, aborted",
                self._who(),
                self.server.dimse_timeout,
            )
            self._abort_and_close(_dimse.abort_pdu(0x02, 0x00))
        except Closed:
            if self._aborted:  # stop(): the listener aborts as service user
                self._abort_and_close(_dimse.abort_pdu(0x00, 0x00))
        except TimeoutError:
            if self.established:  # idle or stalled: A-ABORT; ARTIM (negotiating): close
                log.info("association from %s: no data, aborted", self._who())
                self._abort_and_close(_dimse.abort_pdu(0x02, 0x00))
        except ProtocolError as exc:
            log.warning("association from %s: protocol error, aborted: %s", self._who(), exc)
            self._abort_and_close(_dimse.abort_pdu(0x02, 0x06))
        except OSError as exc:  # reset, TLS error: nothing to answer
            log.info("association from %s: connection lost: %s", self._who(), exc)
        except Exception:  # noqa: BLE001 - one association's failure ends only it
            log.exception("association from %s: internal error, aborted", self._who())
            self._abort_and_close(_dimse.abort_pdu(0x02, 0x00))
        finally:
            self.io.close()
            self.server._done(self)

    def abort(self) -> None:
        """From another thread: the association thread answers A-ABORT and closes."""
        self._aborted = True
        # wakes the thread's recv (0 bytes); it then sends the A-ABORT itself
        self.io.interrupt(socket.SHUT_RD)

    def evict(self, why: str) -> None:
        """From another thread: closes a connection still negotiating (no A-ABORT: PS3.8
        AA-2, as on ARTIM expiry)."""
        with self.server._lock:
            if self.admitted or self.evicted:
                return
            self.evicted = why
        self.server.admission.report(
            "closed", self.address[0], f"connection from {self._who()} closed: {why}"
        )
        # wakes the thread's recv or handshake; it then closes the socket
        self.io.interrupt(socket.SHUT_RDWR)

    def _who(self) -> str:
        ae = f"{self.calling_ae} at " if self.calling_ae else ""
        return f"{ae}{self.address[0]}:{self.address[1]}"

    def _handshake(self) -> bool:
        sock = self.sock
        if not isinstance(sock, ssl.SSLSocket):
            return True
        try:
            sock.do_handshake()
        except (OSError, ssl.SSLError) as exc:
            if not self.evicted:
                log.warning("DICOM TLS handshake with %s failed: %s", self.address[0], exc)
            return False
        return True

    # -- reading, writing and closing -------------------------------------

    def _guard(self, pdu_type: int, length: int) -> None:
        limit = self.server.max_pdu if pdu_type == _dimse.P_DATA_TF else OTHER_PDU_MAX
        if length > limit:
            log.warning(
                "association from %s: PDU announcing %d bytes (limit %d): aborted",
                self._who(),
                length,
                limit,
            )
            self._abort_and_close(_dimse.abort_pdu(0x02, 0x06))
            raise Closed

    def _send_command(self, context_id: int, command_set: bytes) -> None:
        self.io.send(b"".join(_dimse.pdata_pdus(context_id, command_set, self.peer_max_pdu)))

    def _abort_and_close(self, pdu: bytes) -> None:
        """Sends our last PDU, then closes our side and waits for the peer's close
        (:meth:`dicom_router._pdu_io.PduSocket.linger`); the association no longer
        counts against ``max_associations`` meanwhile."""
        try:
            self.io.send(pdu)
        except OSError:
            pass
        self.server._done(self)
        self.io.linger()

    def _unexpected(self, pdu_type: int) -> None:
        """A-ABORT (PS3.8 AA-1): unexpected PDU (a known type), or unrecognized PDU."""
        known = _dimse.A_ASSOCIATE_RQ <= pdu_type <= _dimse.A_ABORT
        log.warning(
            "association from %s: %s PDU type 0x%02X, aborted",
            self._who(),
            "unexpected" if known else "unrecognized",
            pdu_type,
        )
        self._abort_and_close(_dimse.abort_pdu(0x02, 0x02 if known else 0x01))

    # -- negotiation (PS3.8 7.1) -------------------------------------------

    def _negotiate(self) -> bool:
        server, io = self.server, self.io
        deadline = self.opened + server.acse_timeout
        pdu_type, length = io.read_header(deadline)
        if pdu_type == _dimse.A_ABORT:
            return False
        if pdu_type != _dimse.A_ASSOCIATE_RQ:
            self._unexpected(pdu_type)
            return False
        self._guard(pdu_type, length)
        body = io.read_body(length, deadline)
        if self.evicted:
            return False
        io.sock.settimeout(server.network_timeout)
        rq, calling, called = _acse.decode_rq(_dimse.pdu_header(pdu_type, length) + bytes(body))
        self.calling_ae = calling
        verdict = server.screen(calling, called, self.address[0])
        if verdict is None and server.stopping:
            verdict = REJECT_CONGESTION
        if verdict is None and not server._admit(self):
            log.warning(
                "listener %s: association from %s refused: more than %d associations",
                server.name,
                self._who(),
                server.max_associations,
            )
            verdict = REJECT_LIMIT
        if verdict is not None:
            self._abort_and_close(_acse.reject(*verdict))
            return False
        accepted = _acse.accept(rq, server.contexts, server.max_pdu)
        self.accepted, self.peer_max_pdu = accepted.contexts, accepted.peer_max_pdu
        io.send(accepted.pdu)
        self.established = True
        log.debug("association from %s accepted", self._who())
        return True

    # -- established: P-DATA-TF, release, abort ---------------------------

    def _serve(self) -> None:
        max_dataset, io = self.server.max_dataset, self.io
        message = Message(max_dataset)
        while True:
            if self._aborted:
                raise Closed
            pdu_type, length = io.read_header()
            self._guard(pdu_type, length)
            if pdu_type == _dimse.P_DATA_TF:
                for context_id, control, data in _dimse.parse_pdvs(io.read_body(length)):
                    if message.add(context_id, control, data):
                        io.message_deadline = None
                        self._dispatch(message)
                        message = Message(max_dataset)
                if message.context_id >= 0 and io.message_deadline is None:
                    io.message_deadline = time.monotonic() + self.server.dimse_timeout
            elif pdu_type == _dimse.A_RELEASE_RQ:
                io.read_body(length)
                self._abort_and_close(_dimse.RELEASE_RP)
                return
            elif pdu_type == _dimse.A_ABORT:
                log.info("association from %s: aborted by the peer", self._who())
                return
            else:
                self._unexpected(pdu_type)
                return

    def _dispatch(self, message: Message) -> None:
        command = message.command
        assert command is not None
        context_id = message.context_id
        field = command.command_field
        if field == _dimse.C_CANCEL_RQ:
            return  # no response defined (PS3.7 9.3.2.3); nothing of ours to cancel
        if not command.is_request:
            raise ProtocolError(f"unexpected response (Command Field 0x{field:04X})")
        cx = self.accepted.get(context_id)
        if field not in (_dimse.C_STORE_RQ, _dimse.C_ECHO_RQ):
            log.warning(
                "association from %s: Command Field 0x%04X not supported (0x0211)",
                self._who(),
                field,
            )
            self._send_command(
                context_id, _dimse.failure_rsp(command, STATUS_UNRECOGNIZED_OPERATION)
            )
            return
        if cx is None or str(cx.abstract_syntax) != command.affected_sop_class_uid:
            log.warning(
                "association from %s: request on presentation context %d (%s) refused (0x0122)",
                self._who(),
                context_id,
                "not accepted" if cx is None else "SOP class differs from the context's",
            )
            self._send_command(
                context_id, _dimse.failure_rsp(command, STATUS_SOP_CLASS_NOT_SUPPORTED)
            )
            return
        if field == _dimse.C_ECHO_RQ:
            self._send_command(context_id, _dimse.echo_rsp(command, STATUS_SUCCESS))
            return
        if message.dropped:
            log.warning(
                "listener %s: instance of %d bytes from %s refused (0x%04X): larger than "
                "the %d bytes allowed",
                self.server.name,
                message.data_size,
                self._who(),
                STATUS_OUT_OF_RESOURCES,
                self.server.max_dataset,
            )
            self._send_command(context_id, _dimse.store_rsp(command, STATUS_OUT_OF_RESOURCES))
            return
        request = StoreRequest(
            calling_ae=self.calling_ae,
            address=self.address,
            transfer_syntax=cx.transfer_syntax[0],
            command=command,
            dataset=message.data,
            size=message.data_size,
        )
        try:
            status = self.server.on_store(request)
        except Exception as exc:  # noqa: BLE001 - fail closed: a failure status, not a crash
            log.error(
                "listener %s: C-STORE handler failed (0x%04X): %s",
                self.server.name,
                STATUS_HANDLER_FAILED,
                type(exc).__name__,
            )
            log.debug("C-STORE handler failure", exc_info=True)
            status = STATUS_HANDLER_FAILED
        self._send_command(context_id, _dimse.store_rsp(command, status))
