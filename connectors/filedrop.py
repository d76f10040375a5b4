"""The file-drop listener: take CDA documents dropped in a directory, journal each, then move it.

Touches: files (lists, reads and renames in the watched directory and its
``processed/`` and ``failed/`` subdirectories), DB (through ``ingest``).

Registered as listener type ``filedrop``. Every ``interval`` the directory is
listed (not recursively). A file is taken only once it is complete:

* the convention for producers: write under a temporary name, then rename
  into place (``rename(2)`` in the same directory is atomic). Names starting
  with ``.`` or ending in ``.tmp`` or ``.part`` are never looked at, so a
  renamed file is complete when it appears;
* on Linux an inotify watch (:mod:`connectors._filewatch`) says which files
  are still open (by anyone: a reader holding a file also delays it) or
  written since their last ``IN_CLOSE_WRITE``: such a file is not taken,
  however long its writer pauses (a writer that dies is closed by the kernel);
* and, everywhere, a file is taken only once its inode, type, link count,
  owner, size, mtime and ctime have stayed the same on two listings at
  least ``settle`` apart (``settle: 0``: when first seen and not busy). Where
  inotify is not had (other systems, network filesystems whose remote writers
  the kernel does not see), this stability check is the only one: a writer
  that keeps a file open and pauses longer than ``settle`` must use the rename
  convention.

A taken file is checked and read by :mod:`connectors._dropfile`: never
through a symbolic link, never a FIFO, socket or device, never a hard link
(more than one name), never a file of another owner than ``owner`` when set,
never more than ``max_file_bytes``. A refused file is not read: it is
journaled as ``rejected`` without bytes, logged at WARNING (the reason, no
name) and moved to ``failed/`` (moving a hard link moves only our name for
it; the other file is left as it is). A read file is examined (hardened XML,
CDA, schema), checked unchanged (no inotify change, same ``lstat``), journaled
(``received``, or ``rejected`` with the reason), checked unchanged again, and
only then moved to ``processed/`` or ``failed/`` under a name the engine
makes, ``<message id>-<original name with unsafe characters replaced>``;
``failed/<that name>.reason.txt`` says why. Nothing in a document chooses a
path. A file that changes before it is journaled is not journaled: it waits
until it is stable again. A file that changes after it is journaled and before
it is moved stays where it is (a WARNING) and is taken again once stable: the
same bytes are recognised as a retransmission, other bytes are a new message.
When the journal cannot be written the file stays where it is and is taken
again on a later poll; a file journaled but not moved (crash, rename refused)
is taken again after a restart, recognised as a retransmission (same bytes)
and moved under its first id.

Logs carry sizes, message ids and outcomes, never file names (they may carry
patient names) nor content.

This module is the listener (polling, taking a file, journaling it); the
configuration is in :mod:`connectors._filedrop_config`, listing and moving files
in :mod:`connectors._filedrop_files`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from connectors._cda_intake import examine, journal_entry, schema_for
from connectors._dropfile import Limits, Snapshot, read_dropped, settle_key, unchanged
from connectors._filedrop_config import FileDropListenerConfig
from connectors._filedrop_files import (
    FAILED,
    PROCESSED,
    REASON_SUFFIX,
    TEMPORARY_SUFFIXES,
    Entry,
    move,
    safe_basename,
    scan,
)
from connectors._filewatch import DirWatch, FileWatcher, open_inotify
from eai.cda_schema import CdaSchema
from eai.errors import ConfigError, ConfigIssue, StoreError
from eai.messages import MEDIA_CDA_XML
from eai.net import run_blocking
from eai.registry import Ingest, ListenerSpec, register_listener

__all__ = [
    "FAILED",
    "PROCESSED",
    "REASON_SUFFIX",
    "TEMPORARY_SUFFIXES",
    "FileDropListener",
    "FileDropListenerConfig",
    "safe_basename",
]

log = logging.getLogger(__name__)


class FileDropListener:
    """Watches one :class:`FileDropListenerConfig` directory; journals through ``ingest``.

    ``watch`` opens the inotify watch (tests pass one returning ``None`` to force polling).
    """

    def __init__(
        self,
        config: FileDropListenerConfig,
        ingest: Ingest,
        *,
        watch: Callable[[Path], DirWatch | None] = open_inotify,
    ) -> None:
        self.config = config
        self._ingest = ingest
        self._schema: CdaSchema | None = None
        self._schema_loaded = False
        self._limits: Limits | None = None
        self._watch = FileWatcher(config.path, watch)
        self._seen: dict[str, tuple[Snapshot, float]] = {}
        self._unmovable: dict[str, Snapshot] = {}  # journaled, rename failed
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._poll_lock = asyncio.Lock()
        self._peer = f"filedrop:{config.path}"

    @property
    def directory(self) -> Path:
        return self.config.path

    async def start(self) -> None:
        """Checks the directory and the owner, loads the schema, starts watching."""
        cfg = self.config
        if not cfg.path.is_dir():
            raise ConfigError(
                [ConfigIssue(str(cfg.path), 0, 0, f"listener {cfg.name}: not a directory")]
            )
        for sub in (PROCESSED, FAILED):
            (cfg.path / sub).mkdir(exist_ok=True)
        self._load_limits()
        await self._load_schema()
        await run_blocking(self._watch.refresh)
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name=f"filedrop:{cfg.name}")
        log.info(
            "listener %s: watching a directory every %g s (settle %g s, inotify %s, schema %s)",
            cfg.name,
            cfg.interval,
            cfg.settle,
            "on" if self._watch.active else "off",
            "on" if self._schema is not None else "off",
        )

    async def stop(self, grace: float) -> None:
        """Stops watching; a file being taken is finished within ``grace`` s."""
        self._stop.set()
        task, self._task = self._task, None
        if task is not None:
            _, pending = await asyncio.wait({task}, timeout=grace)
            if pending:
                task.cancel()
                log.warning(
                    "listener %s: file still being taken after %g s", self.config.name, grace
                )
                await asyncio.wait({task})
        self._watch.close()
        if task is not None:
            log.info("listener %s: stopped", self.config.name)

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.poll()
            except Exception:  # noqa: BLE001 - the listener never dies on one bad poll
                log.exception("listener %s: poll failed", self.config.name)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.interval):
                    await self._stop.wait()

    async def poll(self) -> int:
        """One listing: takes every complete file; returns how many were journaled.

        Serialised: a poll asked for while one runs waits for it.
        """
        async with self._poll_lock:
            self._load_limits()
            await self._load_schema()
            return await self._poll()

    def _load_limits(self) -> None:
        if self._limits is None:
            self._limits = Limits(self.config.max_file_bytes, self.config.owner_uid())

    async def _load_schema(self) -> None:
        if not self._schema_loaded:
            self._schema = await run_blocking(schema_for, self.config)
            self._schema_loaded = True

    async def _poll(self) -> int:
        await run_blocking(self._watch.refresh)
        try:
            entries = await run_blocking(scan, self.config.path, self.config.pattern)
        except OSError as exc:
            log.warning("listener %s: cannot list the directory: %s", self.config.name, exc)
            return 0
        taken = 0
        for entry in self._ready(entries):
            if self._stop.is_set():
                break
            try:
                if await self._take(entry):
                    taken += 1
            except StoreError as exc:
                log.warning(
                    "listener %s: journal unavailable (%s); files left in place, retried later",
                    self.config.name,
                    exc,
                )
                break
        return taken

    def _ready(self, entries: list[Entry]) -> list[Entry]:
        """The entries not being written and unchanged for ``settle``."""
        assert self._limits is not None
        now = time.monotonic()
        present = {e.name for e in entries}
        for gone in set(self._seen) - present:
            del self._seen[gone]
        for gone in set(self._unmovable) - present:
            del self._unmovable[gone]
        self._watch.forget_except(present)
        ready: list[Entry] = []
        for entry in entries:
            key = settle_key(entry.snapshot, self._limits)
            if self._unmovable.get(entry.name) == key:
                continue
            known = self._seen.get(entry.name)
            if self._watch.busy(entry.name):  # open, or written since closed: settle restarts
                self._seen[entry.name] = (key, now)
                continue
            if known is None or known[0] != key:
                self._seen[entry.name] = (key, now)
                if self.config.settle > 0:
                    continue
            elif now - known[1] < self.config.settle:
                continue
            ready.append(entry)
        return ready

    def _wait_again(self, name: str, snapshot: Snapshot) -> None:
        assert self._limits is not None
        self._seen[name] = (settle_key(snapshot, self._limits), time.monotonic())

    async def _unchanged(self, entry: Entry, snapshot: Snapshot, token: tuple[int, int]) -> bool:
        await run_blocking(self._watch.refresh)
        if self._watch.changed_since(entry.name, token):
            return False
        return await run_blocking(unchanged, self.config.path / entry.name, snapshot)

    async def _take(self, entry: Entry) -> bool:
        cfg = self.config
        path = cfg.path / entry.name
        assert self._limits is not None
        token = self._watch.token(entry.name)
        try:
            read = await run_blocking(read_dropped, path, entry.snapshot, self._limits)
        except FileNotFoundError:
            self._seen.pop(entry.name, None)
            return False
        except OSError as exc:
            log.warning("listener %s: cannot read a file: %s", cfg.name, exc.strerror)
            return False
        if read.changed:  # not complete: wait again
            self._wait_again(entry.name, read.snapshot)
            return False
        verdict = read.verdict
        if verdict is None:
            verdict = await run_blocking(examine, read.payload, self._schema)
        unread = read.verdict is not None  # refused for what it is: its bytes do not matter
        if not unread and not await self._unchanged(entry, read.snapshot, token):
            log.info("listener %s: a file changed while it was read; taken once stable", cfg.name)
            self._wait_again(entry.name, read.snapshot)
            return False
        record = journal_entry(cfg.name, read.payload, verdict, self._peer, keep_payload=not unread)
        result = await self._ingest(record)  # StoreError: the file stays for a later poll
        self._seen.pop(entry.name, None)
        if not unread and not await self._unchanged(entry, read.snapshot, token):
            log.warning(
                "listener %s: message %d journaled, but its file changed before it was moved; "
                "left in place and taken again once stable",
                cfg.name,
                result.message_id,
            )
            return True
        try:
            where = await run_blocking(move, path, result.message_id, verdict)
        except OSError as exc:
            self._unmovable[entry.name] = settle_key(read.snapshot, self._limits)
            log.error(
                "listener %s: message %d journaled but the file could not be moved (%s); "
                "left in place, taken again when it changes or the engine restarts",
                cfg.name,
                result.message_id,
                exc.strerror,
            )
            return True
        if unread:
            log.warning(
                "listener %s: file refused unread (%s: %s) -> message %d, moved to %s/",
                cfg.name,
                verdict.outcome,
                verdict.reason,
                result.message_id,
                where,
            )
            return True
        log.info(
            "listener %s: file of %d bytes -> message %d%s, %s, moved to %s/",
            cfg.name,
            read.snapshot.size,
            result.message_id,
            " (already journaled)" if result.duplicate else "",
            verdict.outcome,
            where,
        )
        return True


def _factory(config: FileDropListenerConfig, ingest: Ingest) -> FileDropListener:
    return FileDropListener(config, ingest)


register_listener(
    ListenerSpec(
        type_name="filedrop",
        config_model=FileDropListenerConfig,
        factory=_factory,
        summary="CDA R2 documents dropped in a directory: journal each, then move it to "
        "processed/ or failed/ (with the reason)",
        produces=(MEDIA_CDA_XML,),
    )
)
