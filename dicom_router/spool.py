"""The spool: each received instance written durably under a name the router derives.

Touches: files (the listener's ``spool_dir``).

Just over 400 lines on purpose: names, the write protocol, quarantine, quota and
reading back are one invariant (only router-made names, written durably, inside
the spool), kept in one module so it can be checked in one reading.

Layout of ``spool_dir``::

    tmp/          instances being written (left-overs are removed at start)
    instances/    complete instances, ``<UTC time>-<uuid4 hex>.dcm``
    quarantine/   instances refused after they were written, each beside
                  ``<name>.reason.txt``

A write is: create ``tmp/<name>`` (O_EXCL, mode 0600), write the instance
sealed (AES-256-GCM under a fresh data key, :mod:`dicom_router._sealing`),
fsync, rename to ``instances/<name>``, fsync ``instances/``. Only then may the
SCP journal the instance (its reference carries the data key, encrypted by the
journal) and answer success. Names never come from a received value (a UID, an
AE title): :func:`spool_name` is a clock reading and a random UUID, and
:func:`instance_path` refuses any other shape, so a name read back from the
journal cannot point outside the spool either.

Directory fsyncs are grouped (:class:`_DirSync`): when several associations
write at once, one fsync of ``instances/`` covers every rename done before it
started.

The quota is the sum of the sizes of ``instances/`` and ``quarantine/``,
counted at start and kept up to date by this process's writes and removals;
other processes (the engine's retention job) remove files too, so the count is
read again from disk when it would refuse, at most every
``_RECOUNT_INTERVAL`` seconds. Sizes are bytes on disk (sealed).

Spool files are encrypted at rest, quarantined ones too: only the calling AE
title and the SHA-256 of the SOP Instance UID (the retention tag) are in clear.
:func:`read_instance` gives an instance's Part-10 bytes back from its reference;
files spooled before encryption (plain Part-10) are still read, checked against
the size and SHA-256 their (encrypted) journal reference recorded.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from dicom_router._sealing import Sealer, SealError, is_sealed, new_key, open_sealed, sealed_size
from eai.errors import StoreError

__all__ = [
    "INSTANCES",
    "QUARANTINE",
    "PendingWrite",
    "Spool",
    "SpoolIntegrityError",
    "SpooledFile",
    "instance_path",
    "is_spool_name",
    "read_instance",
    "spool_name",
]

log = logging.getLogger(__name__)

INSTANCES = "instances"
QUARANTINE = "quarantine"
_TMP = "tmp"
_NAME = re.compile(r"^\d{8}T\d{6}-[0-9a-f]{32}\.dcm$")
_WARN_AT = 0.9
_REARM_AT = 0.85
_RECOUNT_INTERVAL = 2.0


def spool_name(now: datetime | None = None) -> str:
    """A fresh spool file name: ``20261123T101500-<uuid4 hex>.dcm`` (UTC)."""
    at = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S")
    return f"{at}-{uuid.uuid4().hex}.dcm"


def is_spool_name(name: str) -> bool:
    """True for a name :func:`spool_name` could have made (and nothing else)."""
    return _NAME.fullmatch(name) is not None


def instance_path(spool_dir: Path, name: str) -> Path:
    """``spool_dir/instances/<name>``; ValueError when ``name`` is not a spool name."""
    if not is_spool_name(name):
        raise ValueError(f"{name[:80]!r} is not a spool file name")
    return Path(spool_dir) / INSTANCES / name


class SpoolIntegrityError(ValueError):
    """A spool file that cannot be read back as the instance that was received."""


def read_instance(path: Path, key: bytes | None, size: int, sha256: str) -> bytes:
    """The Part-10 bytes of a spooled instance, decrypted and checked.

    ``key`` is the instance's data key (None for a file spooled before encryption,
    accepted only in clear). Raises OSError (FileNotFoundError when gone) or
    :class:`SpoolIntegrityError` when the file fails authentication or its
    plaintext is not the ``size`` bytes of SHA-256 ``sha256`` that were received.
    """
    data = path.read_bytes()
    if key is not None:
        try:
            data = open_sealed(data, path.name, key)
        except SealError as exc:
            raise SpoolIntegrityError(
                f"spool file {path.name} cannot be decrypted: {exc}"
            ) from None
    elif is_sealed(data):
        raise SpoolIntegrityError(f"spool file {path.name} is sealed but its reference has no key")
    if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
        raise SpoolIntegrityError(f"spool file {path.name} changed since it was received")
    return data


@dataclass(frozen=True, slots=True)
class SpooledFile:
    """An instance on disk, sealed, fsynced, under its final name.

    ``size`` and ``sha256`` are the plaintext's (the Part-10 instance), ``disk_size``
    the sealed file's; ``key`` is the data key (kept only in the journal reference).
    """

    name: str
    path: Path
    size: int
    sha256: str
    key: bytes = field(repr=False)
    disk_size: int


class _DirSync:
    """fsyncs one directory; concurrent callers share one fsync started after their call."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._cond = threading.Condition()
        self._requested = 0
        self._done = 0
        self._running = False

    def sync(self) -> None:
        with self._cond:
            self._requested += 1
            mine = self._requested
            while self._done < mine:
                if self._running:
                    self._cond.wait()
                    continue
                self._running = True
                target = self._requested
                self._cond.release()
                try:
                    _fsync_dir(self._path)
                finally:
                    self._cond.acquire()
                    self._running = False
                    self._cond.notify_all()
                self._done = max(self._done, target)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class PendingWrite:
    """An instance written to ``tmp/`` whose fsync and rename may still be running."""

    spooled: SpooledFile
    _done: Future[SpooledFile] = field(repr=False)

    def durable(self, timeout: float | None = None) -> SpooledFile:
        """Waits until the instance is durable under its final name; raises
        :class:`StoreError` when it could not be made so (nothing is left then)."""
        return self._done.result(timeout)


class Spool:
    """One listener's spool directory (thread-safe: one instance, many associations)."""

    def __init__(self, root: Path, quota_bytes: int | None = None) -> None:
        self.root = Path(root)
        self.quota_bytes = quota_bytes
        self.instances = self.root / INSTANCES
        self.quarantine_dir = self.root / QUARANTINE
        self._tmp = self.root / _TMP
        self._lock = threading.Lock()
        self._used = 0
        self._counted_at = 0.0
        self._warned = False
        self._sync_instances = _DirSync(self.instances)
        self._sync_quarantine = _DirSync(self.quarantine_dir)

    # -- lifecycle ---------------------------------------------------------

    def open(self) -> None:
        """Create the directories, drop half-written files, count the usage."""
        try:
            for d in (self.root, self.instances, self.quarantine_dir, self._tmp):
                d.mkdir(mode=0o700, parents=True, exist_ok=True)
            for leftover in self._tmp.iterdir():
                log.warning("spool %s: removing half-written %s", self.root, leftover.name)
                leftover.unlink(missing_ok=True)
        except OSError as exc:
            raise StoreError(f"spool {self.root}: {exc.strerror or exc}") from exc
        with self._lock:
            self._recount()

    @property
    def used_bytes(self) -> int:
        """Bytes held in ``instances/`` and ``quarantine/`` (as last counted)."""
        with self._lock:
            return self._used

    # -- writing -----------------------------------------------------------

    def write(self, chunks: Iterable[bytes | memoryview], size: int, tag: str) -> SpooledFile:
        """Seals ``chunks`` (``size`` bytes in all) as a new instance; durable on return.

        ``tag`` is the clear retention tag (:func:`dicom_router._sealing.retention_tag`).
        Raises :class:`StoreError` when the quota would be exceeded or the disk
        refuses (full, read-only, permissions); nothing is left behind then.
        """
        return self.begin(chunks, size, tag, sync=None).durable()

    def begin(
        self,
        chunks: Iterable[bytes | memoryview],
        size: int,
        tag: str,
        sync: Executor | None,
    ) -> PendingWrite:
        """:meth:`write` in two halves: seals and writes ``tmp/<name>`` now, and makes it
        durable (fsync, rename to ``instances/``, fsync of the directory) on ``sync``'s
        thread while the caller goes on (inline when ``sync`` is None).

        The caller must call :meth:`PendingWrite.durable` before it relies on the file
        (journals it, answers success). Raises :class:`StoreError` like :meth:`write`.
        """
        disk_size = sealed_size(size, tag)
        self._reserve(disk_size)
        name = spool_name()
        tmp = self._tmp / name
        final = self.instances / name
        key = new_key()
        digest = hashlib.sha256()
        written = 0

        def plain() -> Iterable[bytes | memoryview]:
            for chunk in chunks:
                digest.update(chunk)
                yield chunk

        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                for sealed in Sealer(key, name, tag).seal(plain(), size):
                    view = memoryview(sealed)
                    while view:
                        n = os.write(fd, view)
                        view = view[n:]
                        written += n
            except BaseException:
                os.close(fd)
                raise
        except (OSError, ValueError) as exc:
            raise self._failed(exc, disk_size, tmp, final) from exc
        spooled = SpooledFile(name, final, size, digest.hexdigest(), key, written)

        def finish() -> SpooledFile:
            try:
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.rename(tmp, final)
                self._sync_instances.sync()
            except OSError as exc:
                raise self._failed(exc, disk_size, tmp, final) from exc
            if written != disk_size:
                self._adjust(written - disk_size)
            return spooled

        done: Future[SpooledFile] | None = None
        if sync is not None:
            try:
                done = sync.submit(finish)
            except RuntimeError:  # shut down (the listener is stopping): finish here
                done = None
        if done is None:
            done = Future()
            try:
                done.set_result(finish())
            except StoreError as exc:
                done.set_exception(exc)
        return PendingWrite(spooled, done)

    def _failed(self, exc: OSError | ValueError, disk_size: int, *paths: Path) -> StoreError:
        """Releases the quota and removes ``paths``; the error to raise."""
        self._release(disk_size)
        for leftover in paths:
            try:
                leftover.unlink(missing_ok=True)
            except OSError:
                pass
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return StoreError(f"spool {self.root}: cannot write: {why}")

    def remove(self, name: str) -> None:
        """Removes an instance (best effort: a file already gone is fine)."""
        path = instance_path(self.root, name)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            log.error("spool %s: cannot remove %s: %s", self.root, name, exc.strerror or exc)
            return
        self._release(size)

    def quarantine(self, name: str, reason: str) -> Path:
        """Moves an instance to ``quarantine/`` with ``<name>.reason.txt``; returns its path."""
        src = instance_path(self.root, name)
        dst = self.quarantine_dir / name
        note = self.quarantine_dir / f"{name}.reason.txt"
        text = f"{datetime.now(UTC).isoformat()} {reason}\n".encode()
        try:
            fd = os.open(note, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, text)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(src, dst)
            self._sync_quarantine.sync()
            self._sync_instances.sync()
        except OSError as exc:
            reason_text = exc.strerror or str(exc)
            raise StoreError(f"spool {self.root}: cannot quarantine: {reason_text}") from exc
        self._adjust(len(text))
        return dst

    # -- quota -------------------------------------------------------------

    def _reserve(self, size: int) -> None:
        quota = self.quota_bytes
        with self._lock:
            if quota is not None and self._used + size > quota:
                if time.monotonic() - self._counted_at >= _RECOUNT_INTERVAL:
                    self._recount()
                if self._used + size > quota:
                    raise StoreError(
                        f"spool {self.root}: quota of {quota} bytes reached "
                        f"({self._used} used, {size} more refused)"
                    )
            self._used += size
            self._check_level()

    def _release(self, size: int) -> None:
        self._adjust(-size)

    def _adjust(self, delta: int) -> None:
        with self._lock:
            self._used = max(0, self._used + delta)
            self._check_level()

    def _check_level(self) -> None:
        """Logs a WARNING once when usage crosses 90 % of the quota (again below 85 %)."""
        quota = self.quota_bytes
        if not quota:
            return
        level = self._used / quota
        if level >= _WARN_AT and not self._warned:
            self._warned = True
            log.warning(
                "spool %s: %.0f%% of its quota used (%d of %d bytes); new instances will be "
                "refused (0xA700) when it is full",
                self.root,
                100 * level,
                self._used,
                quota,
            )
        elif level < _REARM_AT:
            self._warned = False

    def _recount(self) -> None:
        total = 0
        for d in (self.instances, self.quarantine_dir):
            try:
                with os.scandir(d) as entries:
                    for e in entries:
                        try:
                            total += e.stat(follow_symlinks=False).st_size
                        except FileNotFoundError:
                            pass
            except FileNotFoundError:
                pass
        self._used = total
        self._counted_at = time.monotonic()
        self._check_level()
