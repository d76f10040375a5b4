"""Which names in a watched directory are still being written (Linux inotify, through ctypes).

Touches: files (an inotify watch on one directory; stats that directory).

A directory watch reports, for every name in it, opens, writes and closes.
:class:`FileWatcher` turns those events into two answers for the file-drop
listener:

* :meth:`FileWatcher.busy`: a file is open by someone (``IN_OPEN`` not yet
  matched by ``IN_CLOSE_*``) or written since its last ``IN_CLOSE_WRITE``. A
  writer that pauses mid-file keeps its file busy however long it pauses; a
  writer that dies is closed by the kernel, which sends ``IN_CLOSE_WRITE``.
* :meth:`FileWatcher.changed_since`: anything touched the name (write, close
  after writing, attribute or link change, rename, delete) since a
  :meth:`FileWatcher.token` was taken; our own reads (open, access, close
  without writing) do not count.

Where inotify is missing (not Linux, no more instances or watches, a remote
filesystem whose writers the kernel does not see) the watcher is inactive:
:meth:`busy` and :meth:`changed_since` answer ``False`` and the listener relies on
its size/mtime/ctime/inode stability check alone. A queue overflow forgets
everything known (a warning) and makes every token stale. When the watched
directory disappears or is replaced, the watch is opened again on the next
:meth:`refresh`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import struct
import sys
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

__all__ = ["DirWatch", "Event", "FileWatcher", "open_inotify"]

log = logging.getLogger(__name__)

# <sys/inotify.h>
IN_ACCESS = 0x00000001
IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_CLOSE_NOWRITE = 0x00000010
IN_OPEN = 0x00000020
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_UNMOUNT = 0x00002000
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000

_MASK = (
    IN_MODIFY
    | IN_ATTRIB
    | IN_CLOSE_WRITE
    | IN_CLOSE_NOWRITE
    | IN_OPEN
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ONLYDIR
)
_CHANGES = IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE
_CHANGES |= IN_DELETE
_GONE = IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT | IN_IGNORED
_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len
_READ_SIZE = 64 * 1024


class Event(NamedTuple):
    """One inotify event: its mask and the name in the directory ("" for the directory)."""

    mask: int
    name: str


class DirWatch:
    """One inotify instance watching one directory; closed by :meth:`close` or when collected."""

    def __init__(self, fd: int, identity: tuple[int, int]) -> None:
        self.fd = fd
        self.identity = identity  # (st_dev, st_ino) of the directory watched
        self._close = weakref.finalize(self, os.close, fd)

    def read(self) -> list[Event] | None:
        """Every queued event (never blocks); ``None`` once the directory's watch is gone."""
        events: list[Event] = []
        while True:
            try:
                data = os.read(self.fd, _READ_SIZE)
            except BlockingIOError:
                return events
            except OSError as exc:
                log.warning("inotify read failed (%s): the watch is reopened", exc.strerror)
                return None
            if not data:
                return events
            offset = 0
            while offset + _HEADER.size <= len(data):
                _wd, mask, _cookie, length = _HEADER.unpack_from(data, offset)
                offset += _HEADER.size
                raw = data[offset : offset + length].split(b"\0", 1)[0]
                offset += length
                if mask & _GONE:
                    return None
                events.append(Event(mask, os.fsdecode(raw)))

    def close(self) -> None:
        self._close()


def _libc_inotify() -> tuple[Callable[[int], int], Callable[[int, bytes, int], int]] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        init1 = libc.inotify_init1
        add_watch = libc.inotify_add_watch
    except (OSError, AttributeError):
        return None
    init1.argtypes = [ctypes.c_int]
    init1.restype = ctypes.c_int
    add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    add_watch.restype = ctypes.c_int
    return init1, add_watch


_INOTIFY = _libc_inotify()


def open_inotify(directory: Path) -> DirWatch | None:
    """An inotify watch on ``directory``, or ``None`` where inotify cannot be had (logged)."""
    if _INOTIFY is None:
        return None
    init1, add_watch = _INOTIFY
    fd = init1(os.O_NONBLOCK | os.O_CLOEXEC)
    if fd < 0:
        err = ctypes.get_errno()
        log.warning("inotify unavailable (%s): polling only", os.strerror(err))
        return None
    watch = DirWatch(fd, (0, 0))
    try:
        st = os.stat(directory)
        if add_watch(fd, os.fsencode(directory), _MASK) < 0:
            err = ctypes.get_errno()
            if err != errno.ENOENT:
                log.warning("inotify watch refused (%s): polling only", os.strerror(err))
            watch.close()
            return None
    except OSError:
        watch.close()
        return None
    watch.identity = (st.st_dev, st.st_ino)
    return watch


def _identity(directory: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(directory)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


@dataclass(slots=True)
class _State:
    opens: int = 0  # IN_OPEN not yet matched by a close
    dirty: bool = False  # written since the last IN_CLOSE_WRITE
    changed: int = 0  # clock value of the last change


class FileWatcher:
    """What inotify says of the names in one directory; inactive where inotify is not had.

    ``opener`` makes the watch (tests pass one that returns ``None`` to force polling).
    """

    def __init__(
        self, directory: Path, opener: Callable[[Path], DirWatch | None] = open_inotify
    ) -> None:
        self._directory = directory
        self._opener = opener
        self._watch: DirWatch | None = None
        self._states: dict[str, _State] = {}
        self._clock = 0
        self._epoch = 0
        self._refused: tuple[int, int] | None = None  # the directory inotify was refused for

    @property
    def active(self) -> bool:
        return self._watch is not None

    def refresh(self) -> None:
        """Takes the queued events; (re)opens the watch when missing or on a replaced directory."""
        watch = self._watch
        if watch is not None:
            events = watch.read()
            if events is None or not self._same_directory(watch):
                self._lose()
            else:
                self._apply(events)
                return
        identity = _identity(self._directory)
        if identity is None or identity == self._refused:
            return  # no directory, or inotify already refused for this one
        self._watch = self._opener(self._directory)
        self._refused = None if self._watch is not None else identity

    def busy(self, name: str) -> bool:
        """The file is open by someone, or written since it was last closed after writing."""
        state = self._states.get(name)
        return state is not None and (state.opens > 0 or state.dirty)

    def token(self, name: str) -> tuple[int, int]:
        """A mark to compare against with :meth:`changed_since`."""
        state = self._states.get(name)
        return (self._epoch, state.changed if state else 0)

    def changed_since(self, name: str, token: tuple[int, int]) -> bool:
        """Something wrote, renamed, relinked or deleted ``name`` since ``token`` was taken."""
        return self.token(name) != token

    def forget_except(self, names: Iterable[str]) -> None:
        """Drops what is known of names no longer in the directory."""
        keep = set(names)
        for name in [n for n in self._states if n not in keep and not self.busy(n)]:
            del self._states[name]

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        self._refused = None

    def _same_directory(self, watch: DirWatch) -> bool:
        return _identity(self._directory) == watch.identity

    def _lose(self) -> None:
        if self._watch is not None:
            self._watch.close()
        self._watch = None
        self._states.clear()
        self._epoch += 1

    def _apply(self, events: list[Event]) -> None:
        for mask, name in events:
            if mask & IN_Q_OVERFLOW:
                log.warning("inotify queue overflowed: files are judged by stability alone")
                self._states.clear()
                self._epoch += 1
                continue
            if not name:
                continue
            state = self._states.setdefault(name, _State())
            if mask & IN_OPEN:
                state.opens += 1
            if mask & (IN_CLOSE_WRITE | IN_CLOSE_NOWRITE):
                state.opens = max(0, state.opens - 1)
            if mask & IN_MODIFY:
                state.dirty = True
            if mask & IN_CLOSE_WRITE:
                state.dirty = False
            if mask & (IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE):
                state.opens, state.dirty = 0, False  # another file now, or none
            if mask & _CHANGES:
                self._clock += 1
                state.changed = self._clock
