"""A small DICOM SCU for the CLI: C-ECHO a peer, C-STORE files to it.

Touches: network (outbound associations), files (reads the DICOM files sent).

``AE@HOST:PORT`` names the peer; ``tls`` (an :class:`ssl.SSLContext`, e.g.
``eai.net.client_context``) makes the association DICOM TLS
(PS3.15 B.12), the server certificate checked against ``peer.host``. Files are
sent as they are (their dataset bytes, in their own transfer syntax: pynetdicom
reads them from disk); one association carries up to 128 (SOP class, transfer
syntax) contexts, more open another.
"""

from __future__ import annotations

import re
import socket
import ssl
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_file_meta_info
from pynetdicom import AE, _config, build_context, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import AssociationSocket

from dicom_router._requestor import MAX_CONTEXTS
from dicom_router._store_scu import tls_reason

__all__ = ["Peer", "SendResult", "echo", "list_files", "parse_peer", "send_files"]

_PEER = re.compile(r"^(?P<ae>[^@\\]{1,16})@(?P<host>\[[^\]]+\]|[^:]+):(?P<port>\d{1,5})$")


# pynetdicom sends a file's dataset straight from disk (bytes as they are) only in
# this mode; without it, it decodes and re-encodes the file. ``eai dicom send``
# sends files this way.
_config.STORE_SEND_CHUNKED_DATASET = True


class ClosingAE(AE):
    """An AE that closes the socket of a connection that failed.

    pynetdicom 3.0's ``AssociationSocket.connect`` drops a refused socket without
    closing it (its ``_shutdown_socket`` stops at ``shutdown()``, which fails on an
    unconnected socket): call :meth:`close_failed` after an association that did
    not establish.
    """

    def __init__(self, ae_title: str) -> None:
        super().__init__(ae_title=ae_title)
        self._sockets: weakref.WeakKeyDictionary[Association, socket.socket] = (
            weakref.WeakKeyDictionary()
        )

    def _create_socket(self, assoc: Association, address: Any, tls_args: Any) -> AssociationSocket:
        sock = super()._create_socket(assoc, address, tls_args)
        if sock.socket is not None:
            self._sockets[assoc] = sock.socket
        return sock

    def close_failed(self, assoc: Association) -> None:
        raw = self._sockets.pop(assoc, None)
        # With TLS, ``connect`` replaced the raw socket by the SSL one wrapping it.
        wrapped = getattr(assoc.dul.socket, "socket", None)
        for sock in (wrapped, raw):
            if sock is not None:
                sock.close()


def tls_problem(
    ctx: ssl.SSLContext, host: str, port: int, server_hostname: str, timeout: float
) -> str:
    """Why a TLS handshake with ``host:port`` fails ('' if it succeeds or TCP fails).

    pynetdicom only logs the handshake error of an association (``transport.py``,
    ``AssociationSocket.connect``): after a failed association, one more handshake
    (nothing else sent) gives the reason for ``last_error`` (e.g. "certificate
    verify failed").
    """
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            ctx.wrap_socket(raw, server_hostname=server_hostname),
        ):
            return ""
    except ssl.SSLError as exc:
        return tls_reason(exc)
    except OSError:
        return ""


@dataclass(frozen=True, slots=True)
class Peer:
    ae_title: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


def parse_peer(text: str) -> Peer:
    """``AE@HOST:PORT`` -> :class:`Peer`; ValueError when malformed."""
    m = _PEER.match(text.strip())
    if m is None or not 0 < int(m.group("port")) < 65536 or not m.group("ae").strip():
        raise ValueError(f"{text!r}: expected AE@HOST:PORT, e.g. PACS@10.0.0.5:104")
    return Peer(m.group("ae").strip(), m.group("host").strip("[]"), int(m.group("port")))


@dataclass(frozen=True, slots=True)
class SendResult:
    path: Path
    ok: bool
    detail: str


def _nodelay(event: evt.Event) -> None:
    raw = getattr(event.assoc.dul.socket, "socket", None)
    if raw is not None:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _ae(calling_ae: str, timeout: float) -> ClosingAE:
    ae = ClosingAE(calling_ae)
    ae.acse_timeout = timeout
    ae.dimse_timeout = timeout
    ae.network_timeout = timeout
    ae.connection_timeout = timeout
    return ae


def echo(
    peer: Peer, calling_ae: str = "EAI", timeout: float = 10.0, tls: ssl.SSLContext | None = None
) -> int:
    """C-ECHO ``peer``; returns the status (0 = success). OSError when no association."""
    ae = _ae(calling_ae, timeout)
    assoc = ae.associate(
        peer.host,
        peer.port,
        contexts=[build_context(Verification)],
        ae_title=peer.ae_title,
        tls_args=None if tls is None else (tls, peer.host),
        evt_handlers=[(evt.EVT_CONN_OPEN, _nodelay)],
    )
    if not assoc.is_established:
        ae.close_failed(assoc)
        raise OSError(_refusal(assoc, peer, tls, timeout))
    try:
        status = assoc.send_c_echo()
    finally:
        assoc.release()
    if "Status" not in status:
        raise OSError(f"{peer}: no C-ECHO response")
    return int(status.Status)


def list_files(paths: Iterable[Path]) -> list[Path]:
    """Files given, and the files under the directories given (sorted)."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file()))
        else:
            out.append(p)
    return out


def send_files(
    peer: Peer,
    files: Iterable[Path],
    calling_ae: str = "EAI",
    timeout: float = 30.0,
    progress: Callable[[SendResult], None] = lambda _r: None,
    tls: ssl.SSLContext | None = None,
) -> list[SendResult]:
    """C-STORE each file to ``peer`` as it is; one result per file, in order."""
    results: list[SendResult] = []
    readable: list[tuple[Path, tuple[str, str]]] = []
    for path in files:
        try:
            meta = read_file_meta_info(path)
            context = (str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID))
        except (OSError, InvalidDicomError, AttributeError, ValueError) as exc:
            result = SendResult(path, False, f"not a DICOM file: {exc}")
            results.append(result)
            progress(result)
            continue
        readable.append((path, context))
    ae = _ae(calling_ae, timeout)
    for batch in _batches(readable):
        contexts = sorted({c for _, c in batch})
        assoc = ae.associate(
            peer.host,
            peer.port,
            contexts=[build_context(sop, ts) for sop, ts in contexts],
            ae_title=peer.ae_title,
            tls_args=None if tls is None else (tls, peer.host),
            evt_handlers=[(evt.EVT_CONN_OPEN, _nodelay)],
        )
        if not assoc.is_established:
            ae.close_failed(assoc)
            why = _refusal(assoc, peer, tls, timeout)
            for path, _ in batch:
                result = SendResult(path, False, why)
                results.append(result)
                progress(result)
            continue
        try:
            for path, _ in batch:
                result = _store(assoc, path)
                results.append(result)
                progress(result)
        finally:
            if assoc.is_established:
                assoc.release()
    return results


def _batches(
    items: list[tuple[Path, tuple[str, str]]],
) -> Iterator[list[tuple[Path, tuple[str, str]]]]:
    batch: list[tuple[Path, tuple[str, str]]] = []
    seen: set[tuple[str, str]] = set()
    for item in items:
        if item[1] not in seen and len(seen) >= MAX_CONTEXTS:
            yield batch
            batch, seen = [], set()
        batch.append(item)
        seen.add(item[1])
    if batch:
        yield batch


def _store(assoc: Association, path: Path) -> SendResult:
    if not assoc.is_established:
        return SendResult(path, False, "association lost")
    try:
        status = assoc.send_c_store(path)
    except (ValueError, AttributeError, OSError) as exc:
        return SendResult(path, False, str(exc))
    if "Status" not in status:
        return SendResult(path, False, "no C-STORE response")
    code = int(status.Status)
    ok = code == 0 or code == 1 or 0xB000 <= code <= 0xBFFF
    return SendResult(path, ok, f"0x{code:04X}")


def _refusal(assoc: Association, peer: Peer, tls: ssl.SSLContext | None, timeout: float) -> str:
    if assoc.is_rejected:
        rj = assoc.acceptor.primitive
        if rj is not None:
            return f"association rejected: {rj.result_str}, {rj.source_str}: {rj.reason_str}"
        return "association rejected"
    problem = "" if tls is None else tls_problem(tls, peer.host, peer.port, peer.host, timeout)
    if problem:
        return f"TLS handshake failed: {problem}"
    if assoc.is_aborted:
        return "association aborted"
    return "cannot connect or negotiate"
