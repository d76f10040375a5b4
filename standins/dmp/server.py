"""The DMP stand-in's HTTPS server: receive ITI-41 over mutual TLS, check, answer.

Touches: network (an HTTPS listener on 127.0.0.1, client certificate required), files (the
TLS certificates; the checks' temporary files).

:class:`DmpStandin` serves one endpoint on an OS-chosen port in a thread. Each request is
checked (:mod:`standins.dmp._checks`, :mod:`standins.dmp._signature`); a request that is
no ITI-41 gets a SOAP ``Sender`` fault (HTTP 500); one whose metadata breaks a rule gets a
``RegistryResponse`` ``Failure`` listing them; otherwise the answer a test chose
(:attr:`DmpStandin.answer`): ``Success`` (the unique ids are then registered),
a ``Failure`` with given errors, a SOAP ``Receiver`` fault, a bare HTTP status, or
``drop``: the request applied as on Success, then the connection closed without an answer
(an answer lost: the client's retry then meets a registry already in the requested
state). Every
request is kept in :attr:`DmpStandin.received`. The same server is the registry: an ITI-57
status change (the DMP's deletion) POSTed to ``/registry`` is checked by
:mod:`standins.dmp._update_checks` against the entries it registered. NOT a DMP: a test
and demo peer.
"""

from __future__ import annotations

import socket
import ssl
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal

from lxml import etree

from standins.dmp._checks import ACTION, Checked, RequestRefused, check_request, check_request_parts
from standins.dmp._signature import verify_dsg, verify_vihf
from standins.dmp._update_checks import check_update

__all__ = ["Answer", "DmpStandin", "Received"]

_RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
_STATUS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:"
_SEVERITY = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"
_SOAP = "http://www.w3.org/2003/05/soap-envelope"
_APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
_DEPRECATED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"
_APPLIED = ("success", "drop")
_SUCCESS = (
    f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{_SOAP}"><soap:Body>'
    f'<rs:RegistryResponse xmlns:rs="{_RS}" status="{_STATUS}Success"/></soap:Body>'
    "</soap:Envelope>"
).encode()
"""The answers after which the request is applied (``drop``: its answer then lost)."""


@dataclass
class Answer:
    """What to answer to a request that passes the checks."""

    kind: Literal["success", "failure", "receiver-fault", "http", "drop"] = "success"
    errors: list[tuple[str, str]] = field(default_factory=list)
    """(errorCode, codeContext) of a ``failure``."""
    status: int = 503
    """The HTTP status of an ``http`` answer (no SOAP body)."""
    times: int | None = None
    """Answer this way that many times, then ``success`` (None: always)."""


@dataclass
class Received:
    """One request as the stand-in saw it."""

    checked: Checked | None
    refused: str = ""
    signature: str = ""
    answered: str = ""
    transaction: str = "ITI-41"
    """ITI-41 (a publication, to the repository) or ITI-57 (a status change, to the registry)."""


def _xml_escape(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def _envelope(body: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{_SOAP}">'
        f"<soap:Body>{body}</soap:Body></soap:Envelope>"
    ).encode()


def registry_response(errors: list[tuple[str, str]]) -> bytes:
    if not errors:
        return _envelope(f'<rs:RegistryResponse xmlns:rs="{_RS}" status="{_STATUS}Success"/>')
    items = "".join(
        f'<rs:RegistryError errorCode="{_xml_escape(code)}" codeContext="{_xml_escape(context)}" '
        f'severity="{_SEVERITY}" location="standin"/>'
        for code, context in errors
    )
    return _envelope(
        f'<rs:RegistryResponse xmlns:rs="{_RS}" status="{_STATUS}Failure">'
        f"<rs:RegistryErrorList>{items}</rs:RegistryErrorList></rs:RegistryResponse>"
    )


def fault(code: str, reason: str) -> bytes:
    return _envelope(
        f"<soap:Fault><soap:Code><soap:Value>soap:{code}</soap:Value></soap:Code>"
        f'<soap:Reason><soap:Text xml:lang="en">{_xml_escape(reason)}</soap:Text></soap:Reason>'
        "</soap:Fault>"
    )


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # A client gone before its answer (a timeout, a refused TLS handshake) is no error
        # of the stand-in: say nothing; anything else is printed as http.server does.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class DmpStandin:
    """An ITI-41 repository on ``https://127.0.0.1:<port>/repository``."""

    def __init__(
        self, cert: Path, key: Path, client_ca: Path, seal_ca: Path, *, max_body: int = 32 << 20
    ) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._context.load_cert_chain(cert, key)
        self._context.load_verify_locations(cafile=client_ca)
        self._context.verify_mode = ssl.CERT_REQUIRED
        self.seal_ca = seal_ca
        self.verify_signature = True
        """False: skip xmlsec1 (a benchmark measuring the client, not the stand-in)."""
        self.benchmark_only_skip_checks = False
        """BENCHMARKS ONLY (``bench/dmp_publish.py``): an ITI-41 is parsed (the MTOM
        package, its root part, the envelope) and answered Success, without the schema,
        ebRIM and signature checks nor registering anything: it measures the client's
        side, not a registry. Never in a test of what eai sends."""
        self.max_body = max_body
        self.answer = Answer()
        self.delay = 0.0
        """Seconds to wait before answering any request (a slow repository)."""
        self.received: list[Received] = []
        self.registered: dict[str, str] = {}
        """Each registered uniqueId and entryUUID -> its document's hash ("" for the rest)."""
        self.entries: dict[str, tuple[str, str]] = {}
        """entryUUID -> (patientId, availabilityStatus) of each registered document entry."""
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The repository's endpoint (ITI-41)."""
        return f"https://127.0.0.1:{self.port}/repository"

    @property
    def registry_url(self) -> str:
        """The registry's endpoint (ITI-57: status changes, a deletion)."""
        return f"https://127.0.0.1:{self.port}/registry"

    def start(self, port: int = 0) -> DmpStandin:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # One answer is two writes (head, body): without this, Nagle holds the
                # body until the client's delayed ACK of the head (40 ms a request).
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", "0") or 0)
                if length > standin.max_body:
                    self._send(413, "text/plain", b"too large")
                    return
                body = self.rfile.read(length)
                if standin.delay > 0:
                    time.sleep(standin.delay)
                handle = standin.handle_update if self.path == "/registry" else standin.handle
                status, content_type, answer = handle(self.headers.get("Content-Type", ""), body)
                if status == 0:  # drop: applied, then no answer at all
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self._send(status, content_type, answer)

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        server = _Server(("127.0.0.1", port), Handler)
        server.socket = self._context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> DmpStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next_answer(self) -> Answer:
        """The answer to give now (call under the lock)."""
        answer = self.answer
        if answer.times is not None:
            answer.times -= 1
            if answer.times <= 0:
                self.answer = Answer()
        return answer

    def handle(self, content_type: str, body: bytes) -> tuple[int, str, bytes]:
        """Check one request and answer it: (HTTP status, Content-Type, body). The request
        joins :attr:`received` once its answer is chosen (one step, under the lock)."""
        soap = "application/soap+xml; charset=UTF-8"
        if self.benchmark_only_skip_checks:
            return self._parsed_only(content_type, body)
        try:
            with self._lock:
                registered = dict(self.registered)
            checked, _ = check_request(content_type, body, self.url, registered)
        except RequestRefused as exc:
            return self._keep(
                Received(None, refused=exc.reason, answered="fault"),
                (500, soap, fault(exc.code, exc.reason)),
            )
        signature = ""
        if self.verify_signature:
            signature = verify_vihf(checked.envelope, self.seal_ca)
            for document in checked.signatures:
                signature = signature or verify_dsg(document, self.seal_ca)
        record = Received(checked, signature=signature)
        if record.signature:
            record.answered = "fault"
            return self._keep(record, (500, soap, fault("Sender", record.signature)))
        if checked.errors:
            record.answered = "failure"
            return self._keep(record, (200, soap, registry_response(checked.errors)))
        with self._lock:
            answer = self._next_answer()
            record.answered = answer.kind
            self.received.append(record)
            if answer.kind in _APPLIED:
                for unique_id in [*checked.unique_ids, *checked.entry_ids]:
                    self.registered.setdefault(unique_id, checked.hashes.get(unique_id, ""))
                for entry_id in checked.entry_ids:
                    self.entries[entry_id] = (checked.patient_id, _APPROVED)
                for entry_id in checked.replaced:
                    self.entries[entry_id] = (checked.patient_id, _DEPRECATED)
        return self._answer(answer)

    def _parsed_only(self, content_type: str, body: bytes) -> tuple[int, str, bytes]:
        """:attr:`benchmark_only_skip_checks`: parse, answer Success."""
        soap = "application/soap+xml; charset=UTF-8"
        try:
            envelope = check_request_parts(content_type, body, ACTION)
            etree.fromstring(envelope, etree.XMLParser(resolve_entities=False, no_network=True))
        except (RequestRefused, etree.XMLSyntaxError) as exc:
            return self._keep(
                Received(None, refused=str(exc), answered="fault"),
                (500, soap, fault("Sender", str(exc))),
            )
        return self._keep(
            Received(Checked(envelope=envelope), answered="success"), (200, soap, _SUCCESS)
        )

    def handle_update(self, content_type: str, body: bytes) -> tuple[int, str, bytes]:
        """Check one ITI-57 (a status change: the DMP's deletion) and answer it; on Success
        the entries take their new status."""
        soap = "application/soap+xml; charset=UTF-8"
        try:
            with self._lock:
                entries, registered = dict(self.entries), set(self.registered)
            checked, _ = check_update(content_type, body, self.registry_url, entries, registered)
        except RequestRefused as exc:
            return self._keep(
                Received(None, refused=exc.reason, answered="fault", transaction="ITI-57"),
                (500, soap, fault(exc.code, exc.reason)),
            )
        record = Received(checked, transaction="ITI-57")
        if self.verify_signature:
            record.signature = verify_vihf(checked.envelope, self.seal_ca)
        if record.signature:
            record.answered = "fault"
            return self._keep(record, (500, soap, fault("Sender", record.signature)))
        if checked.errors:
            record.answered = "failure"
            return self._keep(record, (200, soap, registry_response(checked.errors)))
        with self._lock:
            answer = self._next_answer()
            record.answered = answer.kind
            self.received.append(record)
            if answer.kind in _APPLIED:
                self.registered.update(dict.fromkeys(checked.unique_ids, ""))
                for entry_id, status in checked.updates:
                    self.entries[entry_id] = (self.entries[entry_id][0], status)
        return self._answer(answer)

    @staticmethod
    def _answer(answer: Answer) -> tuple[int, str, bytes]:
        soap = "application/soap+xml; charset=UTF-8"
        if answer.kind == "failure":
            return 200, soap, registry_response(answer.errors)
        if answer.kind == "receiver-fault":
            return 500, soap, fault("Receiver", "repository temporarily unavailable")
        if answer.kind == "http":
            return answer.status, "text/plain", b"unavailable"
        if answer.kind == "drop":
            return 0, "", b""
        return 200, soap, registry_response([])

    def _keep(self, record: Received, answer: tuple[int, str, bytes]) -> tuple[int, str, bytes]:
        with self._lock:
            self.received.append(record)
        return answer

    @property
    def published(self) -> list[Checked]:
        """The ITI-41 requests applied (answered Success, or dropped), in order."""
        return [
            r.checked
            for r in self.received
            if r.answered in _APPLIED and r.checked and r.transaction == "ITI-41"
        ]

    @property
    def updated(self) -> list[Checked]:
        """The ITI-57 requests (status changes: deletions) applied, in order."""
        return [
            r.checked
            for r in self.received
            if r.answered in _APPLIED and r.checked and r.transaction == "ITI-57"
        ]
