"""The engine's data directory: private to the engine (0700), locked by one engine per
SQLite journal; and the lease check a multi-node config needs.

Touches: files (data_dir mode, data_dir/eai.lock).
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import IO

from eai.config import Config
from eai.errors import StoreError

__all__ = ["lease_problems", "lock_data_dir", "private_data_dir"]

log = logging.getLogger("eai.engine")


def private_data_dir(data_dir: Path, group_traverses: bool) -> None:
    """The data dir is the engine's alone (0700): journal, key, spool, admin socket.

    :class:`eai.admin.AdminServer` lets ``engine.admin_group`` traverse it (0710) when
    the socket is inside: that bit is left as it is.
    """
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = data_dir.stat()
    if st.st_uid == os.geteuid() and st.st_mode & (0o067 if group_traverses else 0o077):
        log.warning("data_dir %s was open to others (%o): now 0700", data_dir, st.st_mode & 0o777)
        data_dir.chmod(0o700)


def lock_data_dir(data_dir: Path) -> IO[str]:
    """One engine per SQLite journal: a second one would corrupt ordering guarantees."""
    fd = os.open(data_dir / "eai.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    f = os.fdopen(fd, "r+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        f.close()
        raise StoreError(f"another engine is running on {data_dir} (eai.lock is held)") from exc
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f


def lease_problems(config: Config) -> list[str]:
    """Destinations whose longest send (connect + response timeouts, from their declared
    :class:`eai.messages.SendLimits`) outlasts the delivery lease: on several nodes,
    another one could claim and send the row again while the first still waits."""
    lease = config.engine.lease
    return [
        f"destination {d.name}: one send may take {d.send_limits().longest_send:g} s, "
        f"longer than engine.lease ({lease:g} s): another node may send it again meanwhile"
        for d in config.destinations
        if d.send_limits().longest_send >= lease
    ]
