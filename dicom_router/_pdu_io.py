"""One DICOM connection: reads and writes whole PDUs on a blocking socket, and closes it.

Touches: network (one connected socket, plain or TLS; no thread of its own).

The transport layer of the DICOM network package (PS3.8 9: the TCP service
under the upper layer protocol), shared by the acceptor
(:mod:`dicom_router._acceptor`) and the requestor
(:mod:`dicom_router._requestor`); above :mod:`dicom_router._pdu` (which it
uses for the 6-byte PDU header only), below everything else.

Reading: :meth:`PduSocket.read_header` then :meth:`PduSocket.read_body`. Every
PDU is announced by its header before its body is read, so the caller can
refuse a length before a byte of it is buffered. A body is read into a buffer
of its length plus one header: what arrives past the body (the start of the
next PDU) is kept for the next read, and the body is handed out as a view,
never copied. A read waits until a ``deadline`` (``time.monotonic()``;
:class:`TimeoutError` past it) or, without one, the socket's own timeout; the
peer's close raises :class:`Closed`; past :attr:`PduSocket.message_deadline`
(the DIMSE timeout of a message being received), :class:`MessageExpired`.

Writing: :meth:`PduSocket.send`, whole PDUs, one writer at a time.

Closing: :meth:`PduSocket.linger` after our last PDU (A-ABORT, A-RELEASE-RP,
A-ASSOCIATE-RJ) half-closes the TCP connection and reads until the peer closes
its side (or :data:`CLOSE_WAIT`): data left unread would turn the close into a
reset, which can destroy that last PDU before the peer reads it. Over TLS the
half-close is the TCP one, below the TLS layer (no close_notify: the peer is
told by the PDU, PS3.15 B.12 asks nothing more), the same for both sides.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time

from dicom_router._pdu import PDU_HEADER, parse_pdu_header

__all__ = ["CLOSE_WAIT", "Closed", "MessageExpired", "PduSocket"]

CLOSE_WAIT = 1.0
"""How long a closing connection waits for the peer to close its side."""


class Closed(Exception):
    """The peer closed the connection (or a thread of ours shut it down)."""


class MessageExpired(Exception):
    """A message still incomplete at :attr:`PduSocket.message_deadline`."""


class PduSocket:
    """PDU input and output on one connected blocking socket (plain or TLS)."""

    __slots__ = ("sock", "message_deadline", "send_timeout", "readahead", "_spare", "_send_lock")

    def __init__(
        self, sock: socket.socket, *, send_timeout: float | None = None, readahead: int = 0
    ) -> None:
        self.sock = sock
        self.message_deadline: float | None = None
        """When set, a read that returns after it raises :class:`MessageExpired`."""
        self.send_timeout = send_timeout
        """Timeout of each :meth:`send` (None: the socket's own, as the last read left it)."""
        self.readahead = readahead
        """A header read from the socket asks for this many bytes (at least the header's 6):
        a small PDU then comes in one system call (the requestor's responses). The
        acceptor keeps 0: its bodies are read with the next header behind them."""
        self._spare = b""  # bytes read past the last PDU body (the next header's start)
        self._send_lock = threading.Lock()

    # -- reading -------------------------------------------------------------

    def _recv_into(self, view: memoryview, deadline: float | None) -> int:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.sock.settimeout(left)
        n = self.sock.recv_into(view)
        if n == 0:
            raise Closed
        expiry = self.message_deadline
        if expiry is not None and time.monotonic() > expiry:
            raise MessageExpired
        return n

    def read_header(self, deadline: float | None = None) -> tuple[int, int]:
        """(PDU-type, PDU-length) of the next PDU."""
        spare = self._spare
        if len(spare) >= PDU_HEADER:
            head, self._spare = spare[:PDU_HEADER], spare[PDU_HEADER:]
            return parse_pdu_header(head)
        size = max(PDU_HEADER, self.readahead)
        buf = bytearray(size)
        buf[: len(spare)] = spare
        got, self._spare = len(spare), b""
        view = memoryview(buf)
        while got < PDU_HEADER:
            got += self._recv_into(view[got:], deadline)
        if size == PDU_HEADER:
            return parse_pdu_header(buf)
        self._spare = bytes(view[PDU_HEADER:got])
        return parse_pdu_header(view[:PDU_HEADER])

    def read_body(self, length: int, deadline: float | None = None) -> memoryview:
        """The next ``length`` bytes (the body announced by :meth:`read_header`); reads the
        next PDU header too when it is there."""
        spare = self._spare
        buf = bytearray(length + PDU_HEADER)
        got = min(len(spare), length)
        buf[:got] = spare[:got]
        rest = spare[got:]
        view = memoryview(buf)
        if rest:  # the spare already holds this body and more: read nothing
            self._spare = rest
            return view[:length]
        while got < length:
            got += self._recv_into(view[got:], deadline)
        self._spare = bytes(view[length:got])
        return view[:length]

    def readable(self) -> bool:
        """True if something can be read now without waiting (bytes kept from the last
        read, TLS records decrypted, or the socket readable; closed counts)."""
        if self._spare:
            return True
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending() > 0:
            return True
        try:
            poller = select.poll()  # not select(): descriptors may be above FD_SETSIZE
            poller.register(self.sock, select.POLLIN)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True

    # -- writing and closing -------------------------------------------------

    def send(self, data: bytes | bytearray | memoryview) -> None:
        """Sends whole PDUs (one writer at a time)."""
        with self._send_lock:
            if self.send_timeout is not None:
                self.sock.settimeout(self.send_timeout)
            self.sock.sendall(data)

    def send_last(self, pdu: bytes) -> None:
        """Sends our last PDU (errors ignored), then :meth:`linger`."""
        try:
            self.send(pdu)
        except OSError:
            pass
        self.linger()

    def linger(self) -> None:
        """Half-closes the connection and reads (discarding) until the peer closes its
        side or :data:`CLOSE_WAIT` (see the module's docstring)."""
        raw = self.sock
        try:
            socket.socket.shutdown(raw, socket.SHUT_WR)
            raw.settimeout(CLOSE_WAIT)
            deadline = time.monotonic() + CLOSE_WAIT
            while time.monotonic() < deadline and socket.socket.recv(raw, 65536):
                pass
        except OSError:
            pass

    def interrupt(self, how: int) -> None:
        """From another thread: shuts the TCP connection down (``socket.SHUT_RD``,
        ``SHUT_RDWR``), which wakes a read or a TLS handshake waiting on it."""
        try:
            socket.socket.shutdown(self.sock, how)
        except OSError:
            pass

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
