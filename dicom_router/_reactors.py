"""Event-driven reactors for pynetdicom associations, in place of its 1 ms polling loops.

Touches: network (waits on the association's socket), threads (pynetdicom's).

pynetdicom 3.0 runs two threads per association that poll: the DUL reactor
(``dul.py``, ``run_reactor``) checks the socket and its queue, then sleeps
``_run_loop_delay`` (1 ms) when idle; the association reactor
(``association.py``, ``_run_reactor``) sleeps 1 ms, then looks for a DIMSE
message. A C-STORE round trip crosses those sleeps three times (request in,
handler, response out): 1.5 to 3 ms of latency per instance on loopback, and a
thousand wake-ups a second per thread competing for the GIL with the journal
and the forwarder. :func:`make_event_driven` swaps both loops for ones that
block until there is work:

- :class:`_EventDUL` waits in ``select`` on the socket and on a wake-up pipe
  that every primitive queued for sending (``send_pdu``) and ``kill_dul``
  write to; timers (ARTIM, idle) are checked at least every ``_TICK`` seconds;
- :class:`_AcceptorAssociation` blocks on the DIMSE message queue (``_TICK``
  at most, then checks release, abort and the idle timer as pynetdicom does);
- :class:`_RequestorAssociation` never takes DIMSE messages at all. pynetdicom's
  requestor reactor also polls the DIMSE queue, and pauses for ``send_*`` with
  an unsynchronised flag (``_is_paused`` set before ``_reactor_checkpoint.wait()``
  returns): a sender can see "paused" while the reactor is already past the
  checkpoint and about to ``get_msg``; on loopback the C-STORE response is
  often there by then, the reactor takes it ("Received unexpected C-STORE
  service message") and ``send_c_store`` waits ``dimse_timeout`` for nothing.
  Ours only watches for release, abort, the DUL's end and the idle timer, and
  does so holding :attr:`_RequestorAssociation.op_lock`, which our senders
  hold around each ``send_c_store`` / ``release``.

The classes override private methods of pynetdicom 3.0 (``run_reactor``,
``_run_reactor``); the rest of its state machine, ACSE and DIMSE is unchanged.
``pyproject.toml`` pins pynetdicom's minor version for this reason.
"""

from __future__ import annotations

import queue
import select
import socket
import ssl
import threading
from typing import cast

from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import A_ABORT_RQ

__all__ = ["make_event_driven"]

_TICK = 0.02
"""Longest wait between two checks of timers, release and abort (seconds)."""


class _EventDUL(DULServiceProvider):
    """The DUL reactor, waiting on the socket and a wake-up pipe instead of sleeping."""

    _wake_r: socket.socket | None
    _wake_w: socket.socket | None

    def _init_wake(self) -> None:
        self._wake_r = self._wake_w = None  # made when the reactor starts, closed when it ends

    def _wake(self) -> None:
        sock = self._wake_w
        if sock is None:
            return  # not started: the reactor looks at its queue before it first waits
        try:
            sock.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # pipe full (a wake-up is pending anyway) or closed (reactor ended)

    def send_pdu(self, primitive: object) -> None:
        super().send_pdu(primitive)  # type: ignore[arg-type]
        self._wake()

    def kill_dul(self) -> None:
        super().kill_dul()
        self._wake()

    def _wait(self) -> None:
        """Blocks until the socket is readable, something is queued, or ``_TICK``."""
        wake = self._wake_r
        if not self.to_provider_queue.empty() or wake is None:
            return
        waits: list[socket.socket] = [wake]
        sock = self.socket
        raw = sock.socket if sock is not None else None
        if raw is not None and sock is not None and sock._is_connected and raw.fileno() >= 0:
            if isinstance(raw, ssl.SSLSocket) and raw.pending():
                return
            waits.append(raw)
        try:
            ready, _, _ = select.select(waits, [], [], _TICK)
        except (OSError, ValueError):
            return  # socket closed under us: the loop's own checks report it
        if wake in ready:
            try:
                while wake.recv(4096):
                    pass
            except (BlockingIOError, OSError):
                pass

    def run_reactor(self) -> None:
        """pynetdicom's ``DULServiceProvider.run_reactor`` with :meth:`_wait` for the sleep."""
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        self._wake_r, self._wake_w = wake_r, wake_w
        try:
            self._loop()
        finally:
            self._wake_r = self._wake_w = None
            wake_r.close()
            wake_w.close()

    def _loop(self) -> None:
        self._idle_timer.start()
        idle = False
        while True:
            if not self.assoc._dul_ready.is_set():
                self.assoc._dul_ready.set()
            if idle:
                self._wait()
            if self._kill_thread:
                break
            if self.artim_timer.expired:
                self.event_queue.put("Evt18")
            try:
                if self._process_recv_primitive():
                    pass
                elif self._is_transport_event():
                    self._idle_timer.restart()
            except Exception:  # noqa: BLE001 - as pynetdicom: abort, stop both reactors
                import logging

                logging.getLogger("pynetdicom.dul").exception(
                    "Exception in DUL.run(), aborting association"
                )
                abort_pdu = A_ABORT_RQ()
                abort_pdu.source = 0x02
                abort_pdu.reason_diagnostic = 0x00
                if self.socket is not None:
                    self.socket.send(abort_pdu.encode())
                self.assoc.is_aborted = True
                self.assoc.is_established = False
                self.assoc._kill = True
                self._kill_thread = True
                return
            try:
                event = self.event_queue.get(block=False)
            except queue.Empty:
                idle = True
                continue
            self.state_machine.do_action(event)
            idle = False


class _AcceptorAssociation(Association):
    """An acceptor whose reactor blocks on the DIMSE queue instead of polling it."""

    def _run_reactor(self) -> None:
        messages = self.dimse.msg_queue
        self._is_paused = False
        while not self._kill:
            self._is_paused = True
            self._reactor_checkpoint.wait()
            self._is_paused = False
            try:
                context_id, msg = messages.get(timeout=_TICK)
            except queue.Empty:
                msg = None
            if msg:
                self._serve_request(msg, cast(int, context_id))
            if self._ended():
                return

    def _ended(self) -> bool:
        """pynetdicom's end-of-association checks (release, abort, DUL gone, idle)."""
        if self.is_established and self.acse.is_release_requested():
            self.acse.send_release(is_response=True)
            self.is_released = True
            self.is_established = False
            evt.trigger(self, evt.EVT_RELEASED, {})
            self.kill()
            return True
        if self.acse.is_aborted():
            self.dul.receive_pdu(wait=False)
            self.is_aborted = True
            self.is_established = False
            evt.trigger(self, evt.EVT_ABORTED, {})
            self.kill()
            return True
        if not self.dul.is_alive():
            self.kill()
            return True
        if self.dul.idle_timer_expired():
            self.abort()
            self.kill()
            return True
        return False


class _RequestorAssociation(_AcceptorAssociation):
    """A requestor whose reactor never takes DIMSE messages (see the module docstring)."""

    op_lock: threading.Lock

    def _run_reactor(self) -> None:
        # Always "paused": send_* never waits for us, and we never touch the DIMSE queue.
        self._is_paused = True
        while not self._kill:
            self._reactor_checkpoint.wait()
            if self.dul._kill_thread:
                self.kill()
                return
            if self.op_lock.acquire(timeout=_TICK):
                try:
                    if self._kill or self._ended():
                        return
                finally:
                    self.op_lock.release()
                self.dul.join(_TICK)  # returns early when the DUL ends


def make_event_driven(assoc: Association) -> Association:
    """Gives ``assoc`` (not started yet) the event-driven reactors; returns it."""
    if assoc.is_alive() or assoc.dul.is_alive():
        raise RuntimeError("the association's threads already run")
    dul = assoc.dul
    dul.__class__ = _EventDUL
    assert isinstance(dul, _EventDUL)
    dul._init_wake()
    if assoc.is_requestor:
        assoc.__class__ = _RequestorAssociation
        assert isinstance(assoc, _RequestorAssociation)
        assoc.op_lock = threading.Lock()
    else:
        assoc.__class__ = _AcceptorAssociation
    return assoc
