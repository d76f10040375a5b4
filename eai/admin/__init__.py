"""The engine's local admin socket: audited reads of health data for people.

Touches: files and network (a Unix socket), DB (through its operations).

The running engine serves :class:`AdminServer`; the CLI calls :func:`request`.
Each caller is identified by the kernel (``SO_PEERCRED``), and a read of a
payload is recorded, committed, before it is answered.
"""

from __future__ import annotations

from eai.admin._break_glass import break_glass_read
from eai.admin._client import AdminRefused, EngineNotRunning, request
from eai.admin._peer import Caller, caller_of, local_caller
from eai.admin._server import AdminServer

__all__ = [
    "AdminRefused",
    "AdminServer",
    "Caller",
    "EngineNotRunning",
    "break_glass_read",
    "caller_of",
    "local_caller",
    "request",
]
