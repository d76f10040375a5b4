"""What every asyncio stream listener does the same way: bind, name peers, TLS, close, stop.

Touches: network (binds the listener's server socket, runs TLS handshakes, closes
the listener's connections and cancels its connection tasks on stop).

The MLLP and HTTP listeners keep their protocol (framing, answers, timeouts of a
request) and their admission; what they share is here: :class:`StreamServer`
(bind, the bound port, stop accepting, let busy connections finish within the
grace then cancel them), :func:`server_handshake` (the TLS handshake a
connection's task runs once admitted, so a refused address is closed before its
ClientHello is read), :func:`close_stream`, and the peer names for logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable, Collection

__all__ = [
    "StreamServer",
    "close_stream",
    "finish_connections",
    "peer_host",
    "peer_name",
    "server_handshake",
]

log = logging.getLogger(__name__)

_CLOSE_WAIT = 5.0
"""Seconds to wait for a closed stream's transport to go (a TLS close_notify may hang)."""

ConnectionCallback = Callable[[asyncio.StreamReader, asyncio.StreamWriter], None]


class StreamServer:
    """One listener's server socket: ``start`` binds, ``close`` + ``finish`` stop it."""

    def __init__(self, listener: str, logger: logging.Logger = log) -> None:
        self.listener = listener
        self._log = logger
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (the OS's choice when the bind said port 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("listener is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def started(self) -> bool:
        return self._server is not None

    async def start(self, on_connection: ConnectionCallback, host: str, port: int) -> None:
        """Binds ``host:port`` (``SO_REUSEADDR``); ``on_connection`` runs for each accept.

        No TLS here: the connection's task starts it with :func:`server_handshake`."""
        self._server = await asyncio.start_server(on_connection, host, port, reuse_address=True)

    def close(self) -> bool:
        """Stops accepting; False when the server was not started (nothing to finish)."""
        if self._server is None:
            return False
        self._server.close()
        return True

    async def finish(self, tasks: Collection[asyncio.Task[None]], grace: float, what: str) -> None:
        """After :meth:`close`: lets ``tasks`` end within ``grace`` s, cancels the rest,
        waits for the socket to close and logs ``listener <name>: stopped``."""
        await finish_connections(tasks, grace, self.listener, what, self._log)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        self._log.info("listener %s: stopped", self.listener)


async def finish_connections(
    tasks: Collection[asyncio.Task[None]],
    grace: float,
    listener: str,
    what: str,
    logger: logging.Logger = log,
) -> None:
    """Lets ``tasks`` finish within ``grace`` seconds, then cancels the rest.

    ``what`` names them in the warning ("request(s)", "connection(s)").
    """
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=grace)
    for task in pending:
        task.cancel()
    if pending:
        logger.warning(
            "listener %s: %d %s still busy after %g s, closed", listener, len(pending), what, grace
        )
        await asyncio.wait(pending)


async def server_handshake(
    writer: asyncio.StreamWriter,
    context: ssl.SSLContext,
    timeout: float | None,
    *,
    listener: str,
    peer: str,
    logger: logging.Logger = log,
    level: int = logging.WARNING,
) -> bool:
    """The server side of a TLS handshake within ``timeout`` s (None: no limit).

    False when it failed (logged at ``level`` with the error's class, not its text)."""
    try:
        await writer.start_tls(context, ssl_handshake_timeout=timeout)
    except (OSError, ssl.SSLError, TimeoutError) as exc:
        logger.log(
            level,
            "listener %s: TLS handshake with %s failed: %s",
            listener,
            peer,
            type(exc).__name__,
        )
        return False
    return True


async def close_stream(writer: asyncio.StreamWriter) -> None:
    """Closes ``writer`` and waits (at most 5 s) for its transport to go; never raises
    for a peer that vanished or a TLS close that failed."""
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
        async with asyncio.timeout(_CLOSE_WAIT):
            await writer.wait_closed()


def peer_host(writer: asyncio.StreamWriter) -> str:
    """The peer's address without port (``""`` when unknown): what admission checks."""
    address = writer.get_extra_info("peername")
    if isinstance(address, tuple) and address:
        return str(address[0])
    return ""


def peer_name(writer: asyncio.StreamWriter) -> str:
    """``host:port`` of the peer, for logs (``?`` when unknown)."""
    address = writer.get_extra_info("peername")
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address or "?")
