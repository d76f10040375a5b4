"""Who is on the other end of a Unix socket, as the kernel says (SO_PEERCRED).

Touches: nothing but the socket option and the user database (``pwd``).
"""

from __future__ import annotations

import os
import pwd
import socket
import struct
from dataclasses import dataclass

__all__ = ["Caller", "caller_of", "local_caller"]

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


@dataclass(frozen=True)
class Caller:
    """A person (or process) reading health data: identified by the kernel, never by
    environment variables such as ``USER``."""

    pid: int
    uid: int
    gid: int
    user: str

    def describe(self) -> str:
        return f"{self.user} (uid {self.uid}, pid {self.pid})"


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid-{uid}"


def caller_of(sock: socket.socket) -> Caller:
    """The peer of a connected ``AF_UNIX`` socket (Linux ``SO_PEERCRED``)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return Caller(pid, uid, gid, _user_name(uid))


def local_caller(uid: int | None = None) -> Caller:
    """This process, by its real uid (``os.getuid()``), for the break-glass record."""
    real = os.getuid() if uid is None else uid
    return Caller(os.getpid(), real, os.getgid(), _user_name(real))
