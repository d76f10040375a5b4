"""The network toolkit of listeners and destinations: TLS, bind, admission, server, threads.

Touches: network and files only through what callers ask (binding a server
socket, loading certificates); importing it touches nothing.

What a connector uses, whatever its protocol:

* :class:`TlsServerConfig`, :class:`TlsClientConfig`: the ``tls:`` models of
  routes.yaml (re-exported by :mod:`eai.config`), and :func:`server_context`,
  :func:`client_context`: TLS >= 1.2 contexts (mutual TLS when configured) from them;
* :func:`split_bind`: ``host:port`` / ``[v6]:port`` of a ``bind`` setting, and the
  annotated field types :data:`BindAddress`, :data:`NetworkList` listener models declare;
* :class:`Admission`, :func:`parse_networks`, :func:`check_networks`,
  :func:`address_allowed`: who may hold a listener's connections
  (``allowed_networks``, per-address cap, eviction of unknown connections), and
  :class:`LogThrottle` so a flood of refusals cannot flood the log;
* :class:`StreamServer`, :func:`server_handshake`, :func:`close_stream`,
  :func:`finish_connections`, :func:`peer_name`, :func:`peer_host`: the asyncio
  stream-server scaffolding (bind, TLS once admitted, graceful stop);
* :func:`run_blocking`: the one way to run a blocking call off the event loop.
"""

from eai.net._admission import (
    Admission,
    Decision,
    IpNetwork,
    LogThrottle,
    address_allowed,
    check_networks,
    parse_networks,
)
from eai.net._bind import split_bind
from eai.net._blocking import run_blocking
from eai.net._fields import BindAddress, NetworkList
from eai.net._server import (
    StreamServer,
    close_stream,
    finish_connections,
    peer_host,
    peer_name,
    server_handshake,
)
from eai.net._tls import TlsClientConfig, TlsServerConfig, client_context, server_context

__all__ = [
    "BindAddress",
    "NetworkList",
    "Admission",
    "Decision",
    "IpNetwork",
    "LogThrottle",
    "StreamServer",
    "TlsClientConfig",
    "TlsServerConfig",
    "address_allowed",
    "check_networks",
    "client_context",
    "close_stream",
    "finish_connections",
    "parse_networks",
    "peer_host",
    "peer_name",
    "run_blocking",
    "server_context",
    "server_handshake",
    "split_bind",
]
