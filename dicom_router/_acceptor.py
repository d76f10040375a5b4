"""The DICOM listener's socket: accepts connections, admits them, one thread per association.

Touches: network (binds a server socket), threads (its own accept loop, one per
connection).

In place of pynetdicom's acceptor (DUL thread, association thread, event
queues, DIMSE primitives, pydicom decoding of every command set), each
accepted connection is an :class:`dicom_router._association.Association`
served in its own thread, reading its blocking socket (PS3.8 state machine,
acceptor side only: see that module). This module is the layer above it: the
accept loop, admission, ARTIM and stop.

Admission (:class:`eai.net.Admission`), at accept, before a byte is read: a
source address outside ``allowed_networks`` is closed (and counted), one
address holds at most ``max_per_peer`` connections (negotiating or
established). ``max_associations`` counts established associations; the
connections still negotiating are capped apart (``max_pending``): past it, a new
connection evicts the oldest one still negotiating (an established association,
whose A-ASSOCIATE-RQ passed the AE title and address checks, is never evicted),
so a flood of silent connections cannot lock the modalities out. ARTIM runs
from the accept: the accept loop closes a connection that has not been admitted
``acse_timeout`` after it was accepted, TLS handshake included (a peer
trickling its handshake or its A-ASSOCIATE-RQ one byte at a time is closed on
time). :meth:`Acceptor.stop` waits for the associations, then aborts the rest.
"""

from __future__ import annotations

import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Sequence

from pynetdicom.presentation import PresentationContext

from dicom_router._association import (
    REJECT_CALLED_AE,
    REJECT_CALLING_AE,
    REJECT_CONGESTION,
    REJECT_LIMIT,
    STATUS_SOP_CLASS_NOT_SUPPORTED,
    STATUS_UNRECOGNIZED_OPERATION,
    Association,
    Screen,
    StoreHandler,
    StoreRequest,
    Verdict,
)
from eai.net import Admission, IpNetwork

__all__ = [
    "Acceptor",
    "Association",
    "REJECT_CALLED_AE",
    "REJECT_CALLING_AE",
    "REJECT_CONGESTION",
    "REJECT_LIMIT",
    "STATUS_SOP_CLASS_NOT_SUPPORTED",
    "STATUS_UNRECOGNIZED_OPERATION",
    "Screen",
    "StoreHandler",
    "StoreRequest",
    "Verdict",
]

log = logging.getLogger(__name__)


class Acceptor:
    """Listens on ``host:port``; serves each association in its own thread."""

    def __init__(
        self,
        *,
        name: str,
        host: str,
        port: int,
        contexts: Sequence[PresentationContext],
        screen: Screen,
        on_store: StoreHandler,
        ssl_context: ssl.SSLContext | None = None,
        max_pdu: int = 262144,
        max_associations: int = 16,
        acse_timeout: float = 30.0,
        network_timeout: float = 60.0,
        dimse_timeout: float = 60.0,
        max_dataset: int = 2 << 30,
        max_pending: int | None = None,
        allowed_networks: tuple[IpNetwork, ...] = (),
        max_per_peer: int = 8,
    ) -> None:
        self.name = name
        self.contexts = list(contexts)
        self.screen = screen
        self.on_store = on_store
        self.ssl_context = ssl_context
        self.max_pdu = max_pdu
        self.max_associations = max_associations
        self.acse_timeout = acse_timeout
        self.network_timeout = network_timeout
        self.dimse_timeout = dimse_timeout
        self.max_dataset = max_dataset
        self.max_pending = max_pending if max_pending is not None else max(64, 4 * max_associations)
        self.admission: Admission[Association] = Admission(
            listener=name,
            networks=allowed_networks,
            max_per_peer=max_per_peer,
            capacity=self.max_pending,
            count_known=False,
        )
        """Who holds the connections; its ``counts`` say how many were refused or evicted."""
        self._address = (host, port)
        self._sock: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._active: set[Association] = set()
        self.stopping = False

    @property
    def port(self) -> int:
        if self._sock is None:
            raise RuntimeError("acceptor is not started")
        return int(self._sock.getsockname()[1])

    @property
    def active_associations(self) -> list[Association]:
        """Connections being served (negotiating or established)."""
        with self._lock:
            return list(self._active)

    def start(self) -> None:
        """Binds and starts the accept loop; returns once bound."""
        family = socket.AF_INET6 if ":" in self._address[0] else socket.AF_INET
        sock = socket.create_server(self._address, family=family, backlog=64)
        self._sock = sock
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._accept_loop, name=f"dicom:{self.name}")
        self._thread.daemon = True
        self._thread.start()

    def stop(self, grace: float) -> int:
        """Stops accepting; waits up to ``grace`` s for associations; aborts the rest
        (returns how many). Blocking."""
        self.stopping = True
        if self._wake_w is not None:
            try:
                self._wake_w.send(b"\0")
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(5)
        for sock in (self._sock, self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        deadline = time.monotonic() + grace
        while self.active_associations and time.monotonic() < deadline:
            time.sleep(0.05)
        left = self.active_associations
        for assoc in left:
            assoc.abort()
        return len(left)

    def _accept_loop(self) -> None:
        sock, wake = self._sock, self._wake_r
        assert sock is not None and wake is not None
        poller = select.poll()  # not select(): descriptors may be above FD_SETSIZE
        poller.register(sock, select.POLLIN)
        poller.register(wake, select.POLLIN)
        while not self.stopping:
            try:
                wait = self._expire_pending()
                ready = {fd for fd, _ in poller.poll(None if wait is None else wait * 1000 + 1)}
                if wake.fileno() in ready or self.stopping:
                    return
                if sock.fileno() not in ready:
                    continue
                client, address = sock.accept()
            except OSError as exc:
                if self.stopping:
                    return
                log.warning("listener %s: accept failed: %s", self.name, exc)
                time.sleep(0.1)  # e.g. out of file descriptors: do not spin
                continue
            assoc = Association(self, client, (str(address[0]), int(address[1])))
            decision = self.admission.admit(assoc, assoc.address[0], _negotiating)
            if not decision.admitted:
                client.close()
                continue
            if decision.evicted is not None:
                decision.evicted.evict(f"to admit a connection from {address[0]}")
            try:
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                client.settimeout(self.network_timeout)
                if self.ssl_context is not None:
                    assoc.io.sock = self.ssl_context.wrap_socket(
                        client, server_side=True, do_handshake_on_connect=False
                    )
            except OSError as exc:
                log.warning("listener %s: connection from %s dropped: %s", self.name, address, exc)
                self.admission.release(assoc)
                client.close()
                continue
            self._serve(assoc)

    def _expire_pending(self) -> float | None:
        """ARTIM: evicts the connections not admitted ``acse_timeout`` after their accept;
        the seconds until the next one is due (None: none negotiating)."""
        now = time.monotonic()
        with self._lock:
            pending = [a for a in self._active if not a.admitted and not a.evicted]
        due: float | None = None
        for assoc in pending:
            expiry = assoc.opened + self.acse_timeout
            if expiry <= now:
                assoc.evict(f"no association within {self.acse_timeout:g} s of connecting")
            elif due is None or expiry < due:
                due = expiry
        return None if due is None else due - now

    def _serve(self, assoc: Association) -> None:
        client, address = assoc.io.sock, assoc.address
        with self._lock:
            self._active.add(assoc)
        thread = threading.Thread(
            target=assoc.run, name=f"dicom:{self.name}:{address[0]}:{address[1]}"
        )
        thread.daemon = True
        try:
            thread.start()
        except RuntimeError as exc:  # cannot start a thread: refuse this one, keep accepting
            log.error("listener %s: connection from %s dropped: %s", self.name, address[0], exc)
            self._done(assoc)
            client.close()

    def _admit(self, assoc: Association) -> bool:
        """Counts ``assoc`` among the established associations, unless there are
        ``max_associations`` already (checked and counted at once)."""
        with self._lock:
            if assoc.evicted or sum(1 for a in self._active if a.admitted) >= self.max_associations:
                return False
            assoc.admitted = True
        self.admission.mark_known(assoc)
        return True

    def _done(self, assoc: Association) -> None:
        with self._lock:
            self._active.discard(assoc)
        self.admission.release(assoc)


def _negotiating(assoc: Association) -> bool:
    """A connection still negotiating may be evicted to make room for a new one."""
    return not assoc.admitted
