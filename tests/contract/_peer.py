"""The fixture protocol of the destination contract suite: what a destination's peer brings.

Touches: network (a black-hole listening socket on 127.0.0.1), nothing else itself.

A destination joins the suite with one :class:`ContractPeer` implementation (its
peer, and the listener that feeds the engine messages it accepts) added to
``tests/contract/conftest.py``'s ``PEERS``. The suite drives the peer's behaviour
(:attr:`ContractPeer.mode`, :attr:`ContractPeer.delay`) and reads what it took
(:meth:`ContractPeer.accepted`); it never looks at the transport.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Protocol

from tests._mllp import MllpSender, msa
from tests._pki import Pki

__all__ = [
    "ContractPeer",
    "Mode",
    "black_hole",
    "client_tls",
    "feed_over_mllp",
    "mllp_listener",
    "server_tls",
]

Mode = Literal["accept", "transient", "permanent"]
"""How the peer answers: success, a failure worth a retry, a refusal for good."""


class ContractPeer(Protocol):
    """A destination's peer and the engine listener that feeds it."""

    destination_type: str
    """The registered destination type (``eai.registry.destinations()``) it serves."""
    permanent_reason: str
    """A text of the peer's permanent refusal that must reach ``eai messages show``."""

    def behave(self, mode: Mode, delay: float = 0.0) -> None:
        """Answer every send from now on by ``mode``, each after ``delay`` seconds (a
        delay longer than the response timeout is no answer)."""

    def start(self, work: Path, tls: Pki | None = None) -> None:
        """Listen on 127.0.0.1 (mutual TLS with ``tls``: the peer requires a client
        certificate of ``tls.ca``); ``work``: a directory of its own."""

    def stop(self) -> None: ...

    def accepted(self) -> list[str]:
        """The ids (HL7 MSH-10, DICOM SOP Instance UID...) the peer answered with success,
        in the order it answered them (a re-sent message appears again)."""

    def attempts(self) -> int:
        """How many sends reached the peer, whatever it answered."""

    def destination(self) -> dict[str, Any]:
        """The peer's destination entry in ``routes.yaml`` (without ``name``, ``retry``)."""

    def timeouts(self, connect: float, response: float) -> dict[str, Any]:
        """The destination keys that set its connect and response timeouts (seconds)."""

    def listener(self, port: int) -> dict[str, Any]:
        """The entry of an engine listener (bound on 127.0.0.1:``port``, 0 = any) that
        journals what this destination accepts, without ``name``."""

    def feed(
        self, port: int, work: Path, patients: Sequence[str], each: int
    ) -> dict[str, list[str]]:
        """Sends ``each`` messages for each patient to the listener on ``port``, returns the
        ids acknowledged, per patient, in the order they were sent."""


def server_tls(pki: Pki) -> ssl.SSLContext:
    """A peer's TLS server context that requires a client certificate of the test CA."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    ctx.load_verify_locations(pki.ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_tls(pki: Pki, *, with_cert: bool = True) -> dict[str, Any]:
    """The destination's ``tls:`` entry (TlsClientConfig) for the test PKI."""
    out: dict[str, Any] = {"ca": str(pki.ca), "server_hostname": "localhost"}
    if with_cert:
        out |= {"cert": str(pki.client_cert), "key": str(pki.client_key)}
    return out


@contextmanager
def black_hole() -> Iterator[int]:
    """A 127.0.0.1 port whose accept queue is full: a connection to it never completes
    (its SYN is dropped), so the connect timeout is what ends the attempt."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    fillers: list[socket.socket] = []
    try:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        for _ in range(8):  # the queue takes backlog + 1; the rest wait in SYN_SENT
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            fillers.append(s)
            s.connect_ex(("127.0.0.1", port))
        yield port
    finally:
        for s in fillers:
            s.close()
        server.close()


def mllp_listener(port: int) -> dict[str, Any]:
    """The engine listener of a peer fed HL7 v2 over MLLP (the national test OIDs accepted)."""
    return {"type": "mllp", "bind": f"127.0.0.1:{port}", "test_feed": True}


def feed_over_mllp(
    port: int,
    patients: Sequence[str],
    each: int,
    message: Callable[[str, int], tuple[str, str, bytes]],
) -> dict[str, list[str]]:
    """Sends ``each`` messages per patient, patients interleaved, each waiting for its AA.

    ``message(patient, i)`` gives the control id, the id the peer will report it by
    (:meth:`ContractPeer.accepted`), and the message; returns those ids per patient."""
    sent: dict[str, list[str]] = {p: [] for p in patients}
    with MllpSender(port) as sender:
        for i in range(each):
            for patient in patients:
                cid, reported, payload = message(patient, i)
                code, _ = msa(sender.exchange(payload))
                assert code == "AA", f"{cid}: {code}"
                sent[patient].append(reported)
    return sent
