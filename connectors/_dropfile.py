"""Reading one dropped file safely: what it is, whether it may be read, and its bytes.

Touches: files (lstat, open read-only, fstat, read; never writes).

A dropped file is described by a :class:`Snapshot` of its ``lstat``: inode,
type, link count, owner, size, mtime and ctime. The listener takes a file
only once its snapshot has stayed the same across ``settle``, and checks it
again before journaling and before moving it.

:func:`refusal` says why a file must not be read; every check reads the
snapshot only (a registry of checks, in order):

* ``not_file``: not a regular file (symbolic link, FIFO, socket, device);
* ``hard_link``: more than one name for the file (``ln /etc/passwd drop/x.xml``
  would otherwise hand any file of the machine to the engine);
* ``owner``: not owned by the configured ``owner``;
* ``too_large``: larger than ``max_file_bytes``.

:func:`read_dropped` checks the snapshot taken now, opens the file with
``O_NOFOLLOW | O_NONBLOCK`` (a symbolic link swapped in fails, a FIFO does not
block), checks the opened file again by ``fstat`` (the authoritative answer),
reads at most ``max_file_bytes + 1`` bytes and says whether the file changed
in the meantime (then it is not complete: the caller waits).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from connectors._cda_intake import Verdict

__all__ = [
    "Dropped",
    "Limits",
    "Snapshot",
    "read_dropped",
    "refusal",
    "settle_key",
    "unchanged",
]

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What ``lstat`` (or ``fstat``) says of a file; two equal snapshots: the same, unchanged."""

    dev: int
    ino: int
    kind: int  # stat.S_IFMT of st_mode
    nlink: int
    uid: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> Snapshot:
        return cls(
            st.st_dev,
            st.st_ino,
            stat.S_IFMT(st.st_mode),
            st.st_nlink,
            st.st_uid,
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
        )

    @property
    def regular(self) -> bool:
        return self.kind == stat.S_IFREG

    @property
    def shape(self) -> Snapshot:
        """The snapshot without size and times: what a refusal for its kind depends on."""
        return replace(self, size=0, mtime_ns=0, ctime_ns=0)


@dataclass(frozen=True, slots=True)
class Limits:
    """What the listener accepts: the size cap and, when configured, the owner's uid."""

    max_bytes: int
    owner_uid: int | None = None


@dataclass(frozen=True, slots=True)
class Dropped:
    """A file read (``verdict`` None) or refused unread (``verdict`` says why)."""

    payload: bytes
    verdict: Verdict | None
    snapshot: Snapshot
    changed: bool = False  # changed while looked at: not complete yet, wait again


_KIND = {
    stat.S_IFLNK: "a symbolic link",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a directory",
}


def _not_regular(snap: Snapshot, limits: Limits) -> Verdict | None:
    if snap.regular:
        return None
    kind = _KIND.get(snap.kind, "a special file")
    return Verdict("not_file", f"not a regular file ({kind}); not read")


def _hard_link(snap: Snapshot, limits: Limits) -> Verdict | None:
    if snap.nlink <= 1:
        return None
    return Verdict(
        "not_file",
        f"a hard link ({snap.nlink} names for one file): it may be a file from outside the "
        "directory; not read",
    )


def _owner(snap: Snapshot, limits: Limits) -> Verdict | None:
    if limits.owner_uid is None or snap.uid == limits.owner_uid:
        return None
    return Verdict(
        "not_file",
        f"owned by uid {snap.uid}, not by the configured owner (uid {limits.owner_uid}); not read",
    )


def _too_large(snap: Snapshot, limits: Limits) -> Verdict | None:
    if snap.size <= limits.max_bytes:
        return None
    return Verdict(
        "too_large",
        f"file of {snap.size} bytes is larger than max_file_bytes ({limits.max_bytes}); not read",
    )


_CHECKS: tuple[Callable[[Snapshot, Limits], Verdict | None], ...] = (
    _not_regular,
    _hard_link,
    _owner,
    _too_large,
)


def refusal(snap: Snapshot, limits: Limits) -> Verdict | None:
    """Why a file with this snapshot must not be read (``None``: it may be)."""
    for check in _CHECKS:
        verdict = check(snap, limits)
        if verdict is not None:
            return verdict
    return None


def settle_key(snap: Snapshot, limits: Limits) -> Snapshot:
    """What must stay the same for ``settle`` before the file is taken.

    The whole snapshot for a file to read (or too large: it may still be
    written); only its :attr:`Snapshot.shape` for one refused for what it is
    (a link, a special file, another owner), whose contents may change forever
    (``ln /var/log/syslog drop/x.xml``) and are never read.
    """
    refused = refusal(snap, limits)
    if refused is None or refused.outcome == "too_large":
        return snap
    return snap.shape


def read_dropped(path: Path, seen: Snapshot, limits: Limits) -> Dropped:
    """Reads ``path`` if it is still ``seen`` and may be read (raises FileNotFoundError if gone)."""
    now = Snapshot.of(os.lstat(path))
    if settle_key(now, limits) != settle_key(seen, limits):
        return Dropped(b"", None, now, changed=True)
    refused = refusal(now, limits)
    if refused is not None:
        return Dropped(b"", refused, now)
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EWOULDBLOCK):  # swapped since lstat
            return Dropped(b"", None, now, changed=True)
        raise
    with os.fdopen(fd, "rb") as f:
        opened = Snapshot.of(os.fstat(f.fileno()))
        if opened != now:  # another file, or changed, since the lstat
            return Dropped(b"", None, opened, changed=True)
        refused = refusal(opened, limits)
        if refused is not None:
            return Dropped(b"", refused, opened)
        data = f.read(limits.max_bytes + 1)
        after = Snapshot.of(os.fstat(f.fileno()))
    changed = after != opened or len(data) != opened.size
    return Dropped(data, None, opened, changed)


def unchanged(path: Path, snap: Snapshot) -> bool:
    """``path`` still names the file of ``snap``, unchanged."""
    try:
        return Snapshot.of(os.lstat(path)) == snap
    except OSError:
        return False
