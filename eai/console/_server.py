"""The console's HTTP(S) server: uvicorn on a thread and event loop of its own.

Touches: network (binds ``console.bind``), files (the TLS certificate and key).

Its own loop: a page that queries the journal for a while never delays a listener's
ACK on the engine's loop. The socket is bound before the thread starts, so a bind
error stops ``eai run`` at once and a test may ask for port 0. A second thread rolls
up the overview sparklines' finished intervals every minute
(:func:`eai.store.roll_up_flows`), so that no page has to.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import uvicorn

from eai.config import Config, ConsoleConfig
from eai.console._app import build_app
from eai.errors import EaiError
from eai.store import Store, roll_up_flows

__all__ = ["ConsoleServer"]

log = logging.getLogger(__name__)

ROLLUP_EVERY = 60.0
"""Seconds between two rollups of the sparklines' intervals (each is 15 minutes)."""


class ConsoleServer:
    def __init__(
        self,
        store: Store,
        config: Callable[[], Config],
        cfg: ConsoleConfig,
        *,
        config_path: Path | None = None,
        listener_states: Callable[[], dict[str, str]] = dict,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.app = build_app(
            store, config, cfg, config_path=config_path, listener_states=listener_states
        )
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._rollup: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self) -> None:
        host, _, port = self.cfg.bind.rpartition(":")
        host = host.strip("[]")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, int(port)))
        except OSError as exc:
            sock.close()
            raise EaiError(f"console.bind {self.cfg.bind}: {exc.strerror}") from exc
        sock.listen(128)
        self.port = sock.getsockname()[1]
        tls = self.cfg.tls
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,  # paths hold search terms (a patient id): never logged
            ssl_certfile=str(tls.cert) if tls else None,
            ssl_keyfile=str(tls.key) if tls else None,
            server_header=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
        )
        self._server = server = uvicorn.Server(config)

        def run() -> None:
            try:
                asyncio.run(server.serve(sockets=[sock]))
            except Exception:  # noqa: BLE001 - the console must never stop the engine
                log.exception("the console stopped")
            finally:
                sock.close()

        self._thread = threading.Thread(target=run, name="console", daemon=True)
        self._thread.start()
        self._rollup = threading.Thread(target=self._roll_up, name="console-rollup", daemon=True)
        self._rollup.start()
        scheme = "https" if tls else "http"
        log.info("console on %s://%s:%d", scheme, host, self.port)

    def _roll_up(self) -> None:
        while True:
            try:
                roll_up_flows(self.store.engine)
            except Exception:  # noqa: BLE001 - the next round tries again
                log.warning("the sparklines' rollup failed", exc_info=True)
            if self._stopping.wait(ROLLUP_EVERY):
                return

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        if self._rollup is not None:
            self._rollup.join(10)
