"""The admin socket's address as bind() and connect() take it, whatever the path's length.

Touches: files (opens the socket's directory when the path is too long).

``sun_path`` holds 107 bytes; a deeper data_dir names its socket through an
open descriptor of the directory (``/proc/self/fd/N/admin.sock``, Linux).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["MAX_PATH", "socket_address"]

MAX_PATH = 107  # sun_path holds 108 bytes with the final NUL


@contextmanager
def socket_address(path: Path) -> Iterator[str]:
    """``path`` itself, or the same file through its directory's descriptor."""
    if len(os.fsencode(path)) <= MAX_PATH:
        yield str(path)
        return
    # O_PATH: enough to name what is inside, for a group that may traverse but not list
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)
