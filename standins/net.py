"""Free TCP ports for stand-ins and tests.

Touches: network (binds and closes a socket on ``host``).
"""

from __future__ import annotations

import socket

__all__ = ["free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that the OS reports free right now.

    The port is found by binding port 0 and closing the socket again, so another
    process may take it before the caller binds it: callers that start a server
    on it should retry with a new port when the bind fails.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port
