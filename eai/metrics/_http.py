"""The supervision HTTP server: ``/metrics``, ``/livez``, ``/readyz`` on threads of its own.

Touches: network (binds one server socket).

A ``wsgiref`` server with one thread per request (as prometheus_client's own
``start_http_server``), never the engine's event loop: a scrape's queries and a
readiness check's journal write wait on their own thread, and a loop that is stuck
still gets its ``/readyz`` answer (503). Requests other than ``GET``/``HEAD`` of the
three paths get 404/405; nothing of a request is logged. The exposition is the text
format 0.0.4 (what Prometheus 2 and 3 both read; every name here is a classic one).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from eai.net import split_bind

__all__ = ["HealthHttp"]

Readiness = Callable[[], tuple[bool, dict[str, object]]]
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass


class _App:
    def __init__(self, scrape: Callable[[], bytes], ready: Readiness) -> None:
        self._scrape = scrape
        self._ready = ready

    def __call__(self, environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "")
        if path not in ("/metrics", "/livez", "/readyz"):
            return _answer(start, "404 Not Found", b"not found\n", method)
        if method not in ("GET", "HEAD"):
            return _answer(start, "405 Method Not Allowed", b"GET only\n", method)
        if path == "/metrics":
            return _answer(start, "200 OK", self._scrape(), method,
                           CONTENT_TYPE_PLAIN_0_0_4)  # fmt: skip
        if path == "/livez":
            return _answer(start, "200 OK", b"ok\n", method)
        ready, detail = self._ready()
        body = json.dumps(detail, sort_keys=True).encode() + b"\n"
        status = "200 OK" if ready else "503 Service Unavailable"
        return _answer(start, status, body, method, "application/json")


def _answer(
    start: StartResponse,
    status: str,
    body: bytes,
    method: str,
    content_type: str = "text/plain; charset=utf-8",
) -> Iterable[bytes]:
    start(
        status,
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
        ],
    )
    return [b""] if method == "HEAD" else [body]


class HealthHttp:
    """Binds at construction; :meth:`start` serves on a daemon thread; :meth:`stop` ends it."""

    def __init__(self, bind: str, scrape: Callable[[], bytes], ready: Readiness) -> None:
        host, port = split_bind(bind)
        server_class = _Server6 if ":" in host else _Server
        self._server = make_server(
            host, port, _App(scrape, ready), server_class=server_class, handler_class=_Quiet
        )
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the OS's choice when ``bind`` says port 0)."""
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="eai-metrics",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Blocks until the serving thread is out (at most one poll interval)."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()
