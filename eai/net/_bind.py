"""Parse a listener's ``bind`` setting (``host:port``, ``[v6]:port``) into host and port.

Touches: nothing.
"""

from __future__ import annotations

__all__ = ["split_bind"]


def split_bind(bind: str) -> tuple[str, int]:
    """``"host:port"`` or ``"[v6]:port"`` -> (host, port); ValueError when malformed."""
    host, sep, port_text = bind.rpartition(":")
    if not sep:
        raise ValueError(f"bind {bind!r} must be host:port, e.g. 0.0.0.0:2575")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host.strip():
        raise ValueError(f"bind {bind!r}: the host is empty (use 0.0.0.0 for every interface)")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"bind {bind!r}: the port must be a number from 0 to 65535")
    return host, int(port_text)
