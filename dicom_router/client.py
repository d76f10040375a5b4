"""``eai dicom echo|send``: C-ECHO a peer, C-STORE files to it, with the router's own SCU.

Touches: network (outbound associations), files (reads the DICOM files sent).

``AE@HOST:PORT`` names the peer; ``tls`` (an :class:`ssl.SSLContext`, e.g.
``eai.net.client_context``) makes the association DICOM TLS (PS3.15 B.12),
the server certificate checked against ``peer.host``. Both go through
:class:`dicom_router._scu.Scu`, the SCU the forwarder sends with (requestor,
PDU reader and writer included), so the CLI exercises the production sender.
Files are sent as they are: their dataset bytes, after the File Meta
Information, in their own transfer syntax (the SOP class and instance from
that File Meta Information, as pynetdicom's ``send_c_store`` of a file path).
One association carries up to 128 (SOP class, transfer syntax) contexts, more
open another. An association that cannot be opened fails the files that were
to go on it, with its reason.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pydicom.errors import InvalidDicomError
from pynetdicom.dsutils import split_dataset

from dicom_router._scu import MAX_CONTEXTS, Link, Scu, Target
from eai.errors import PermanentDeliveryError, TransientDeliveryError

__all__ = ["Peer", "SendResult", "echo", "list_files", "parse_peer", "send_files"]

_PEER = re.compile(r"^(?P<ae>[^@\\]{1,16})@(?P<host>\[[^\]]+\]|[^:]+):(?P<port>\d{1,5})$")
MAX_PDU = 16382
"""Our Maximum Length Received (pynetdicom's default, as before)."""

_Context = tuple[str, str]
_Failure = (TransientDeliveryError, PermanentDeliveryError)


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


def _scu(peer: Peer, calling_ae: str, timeout: float, tls: ssl.SSLContext | None) -> Scu:
    return Scu(
        Target(
            name="cli",
            host=peer.host,
            port=peer.port,
            ae_title=peer.ae_title,
            calling_ae=calling_ae,
            max_pdu=MAX_PDU,
            connect_timeout=timeout,
            acse_timeout=timeout,
            network_timeout=timeout,
            dimse_timeout=timeout,
            ssl_context=tls,
            server_hostname=peer.host,
        )
    )


def _why(peer: Peer, exc: Exception) -> str:
    """The SCU's error text without the peer's ``AE@HOST:PORT`` it starts with."""
    text = str(exc)
    if text.startswith(str(peer)):
        text = text[len(str(peer)) :].lstrip(": ")
    return text


def echo(
    peer: Peer, calling_ae: str = "EAI", timeout: float = 10.0, tls: ssl.SSLContext | None = None
) -> int:
    """C-ECHO ``peer``; returns the status (0 = success). OSError when no association
    or no response."""
    scu = _scu(peer, calling_ae, timeout, tls)
    try:
        return scu.echo(scu.links[0])
    except _Failure as exc:
        raise OSError(_why(peer, exc)) from exc
    finally:
        scu.release_idle(0.0)


def list_files(paths: Iterable[Path]) -> list[Path]:
    """Files given, and the files under the directories given (sorted)."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file()))
        else:
            out.append(p)
    return out


@dataclass(frozen=True, slots=True)
class _File:
    path: Path
    context: _Context
    sop_instance: str
    offset: int


def _file(path: Path) -> _File:
    """The file's File Meta Information; raises what pydicom raises on a non-DICOM file."""
    meta, offset = split_dataset(path)
    missing = [
        kw
        for kw in ("MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID", "TransferSyntaxUID")
        if kw not in meta
    ]
    if missing:
        raise AttributeError(f"File Meta Information without {', '.join(missing)}")
    return _File(
        path,
        (str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID)),
        str(meta.MediaStorageSOPInstanceUID),
        offset,
    )


def send_files(
    peer: Peer,
    files: Iterable[Path],
    calling_ae: str = "EAI",
    timeout: float = 30.0,
    progress: Callable[[SendResult], None] = lambda _r: None,
    tls: ssl.SSLContext | None = None,
) -> list[SendResult]:
    """C-STORE each file to ``peer`` as it is; one result per file, in order (the files
    that are not DICOM first)."""
    results: list[SendResult] = []

    def done(result: SendResult) -> None:
        results.append(result)
        progress(result)

    readable: list[_File] = []
    for path in files:
        try:
            readable.append(_file(path))
        except (OSError, InvalidDicomError, AttributeError, ValueError) as exc:
            done(SendResult(path, False, f"not a DICOM file: {exc}"))
    scu = _scu(peer, calling_ae, timeout, tls)
    link = scu.links[0]
    try:
        for batch in _batches(readable):
            scu.propose(link, sorted({f.context for f in batch}))
            refused = ""
            for item in batch:
                if refused:
                    done(SendResult(item.path, False, refused))
                    continue
                result, refused = _store(scu, link, peer, item)
                done(result)
    finally:
        scu.release_idle(0.0)
    return results


def _batches(items: list[_File]) -> Iterator[list[_File]]:
    batch: list[_File] = []
    seen: set[_Context] = set()
    for item in items:
        if item.context not in seen and len(seen) >= MAX_CONTEXTS:
            yield batch
            batch, seen = [], set()
        batch.append(item)
        seen.add(item.context)
    if batch:
        yield batch


def _store(scu: Scu, link: Link, peer: Peer, item: _File) -> tuple[SendResult, str]:
    """The file's result, and why the association could not be opened ('' if it was)."""
    try:
        scu.association(link, item.context)
    except _Failure as exc:
        why = _why(peer, exc)
        return SendResult(item.path, False, why), "" if link.assoc is not None else why
    try:
        with item.path.open("rb") as f:
            f.seek(item.offset)
            data = f.read()
    except OSError as exc:
        return SendResult(item.path, False, str(exc)), ""
    try:
        code = scu.store(link, item.context, item.sop_instance, data)
    except _Failure as exc:
        return SendResult(item.path, False, _why(peer, exc)), ""
    ok = code == 0 or code == 1 or 0xB000 <= code <= 0xBFFF
    return SendResult(item.path, ok, f"0x{code:04X}"), ""
