"""The file-drop listener: take CDA documents dropped in a directory, journal each, then move it.

Touches: files (lists, reads and renames in the watched directory and its
``processed/`` and ``failed/`` subdirectories), DB (through ``ingest``).

Registered as listener type ``filedrop``. Every ``interval`` the directory is
listed (not recursively). A file is taken only once it is complete:

* producers that write under a temporary name then rename (the atomic rename
  convention) are served at once: names starting with ``.`` or ending in
  ``.tmp`` are never looked at;
* any other file matching ``pattern`` is taken once its size and modification
  time have stayed the same on two polls at least ``settle`` apart (``settle:
  0`` takes a file when first seen, for producers that always rename).

A taken file is read (never through a symbolic link), examined (hardened XML,
CDA, schema), journaled (``received``, or ``rejected`` with the reason), and
only after the commit moved to ``processed/`` or ``failed/`` under a name the
engine makes, ``<message id>-<original name with unsafe characters replaced>``;
``failed/<that name>.reason.txt`` says why. Nothing in a document chooses a
path. When the journal cannot be written the file stays where it is and is
taken again on a later poll; a file journaled but not moved (crash, rename
refused) is taken again after a restart, recognised as a retransmission
(same bytes) and moved under its first id.

Logs carry sizes, message ids and outcomes, never file names (they may carry
patient names) nor content.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fnmatch
import logging
import os
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from connectors._cda_intake import MIB, CdaIntakeConfig, Verdict, examine, journal_entry, schema_for
from eai._concurrency import run_blocking
from eai.cda_schema import CdaSchema
from eai.config import Duration
from eai.errors import ConfigError, ConfigIssue, StoreError
from eai.registry import Ingest, ListenerSpec, register_listener

__all__ = ["FileDropListener", "FileDropListenerConfig", "safe_basename"]

log = logging.getLogger(__name__)

PROCESSED = "processed"
FAILED = "failed"
REASON_SUFFIX = ".reason.txt"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_MAX_NAME = 120


class FileDropListenerConfig(CdaIntakeConfig):
    """A watched directory where CDA R2 documents are dropped as files."""

    type: Literal["filedrop"] = Field(
        default="filedrop", description="listener type: CDA documents dropped as files"
    )
    path: Path = Field(
        description="the watched directory (must exist); processed/ and failed/ are created in it",
        examples=["/var/spool/eai/cda-in"],
    )
    pattern: str = Field(
        default="*.xml",
        min_length=1,
        description="file names taken (shell pattern, case-sensitive); names starting with . "
        "or ending in .tmp are always ignored",
        examples=["*.xml", "CR-*.xml"],
    )
    interval: Duration = Field(
        default=1.0,
        gt=0,
        description="time between two listings of the directory",
        examples=["1s", "500ms"],
    )
    settle: Duration = Field(
        default=1.0,
        description="how long a file's size and modification time must stay unchanged before "
        "it is taken (0: take it when first seen, for producers that rename complete files)",
        examples=["1s", 0],
    )
    max_file_bytes: int = Field(
        default=20 * MIB,
        gt=0,
        description="largest document taken; a bigger file is rejected unread and moved to failed/",
        examples=[20 * MIB],
    )

    @field_validator("pattern")
    @classmethod
    def _plain_pattern(cls, value: str) -> str:
        if "/" in value or "\\" in value or "\x00" in value:
            raise ValueError("pattern matches file names in the directory: no path separators")
        return value


def safe_basename(name: str) -> str:
    """``name`` reduced to ``[A-Za-z0-9._-]``, no leading dot, at most 120 characters."""
    cleaned = _UNSAFE.sub("_", os.path.basename(name.replace("\\", "/")))
    cleaned = cleaned.lstrip(".") or "document"
    if len(cleaned) > _MAX_NAME:
        stem, dot, ext = cleaned.rpartition(".")
        keep = ext[:16] if dot else ""
        cleaned = cleaned[: _MAX_NAME - len(keep) - 1] + ("." + keep if keep else "")
    return cleaned


@dataclass(frozen=True, slots=True)
class _Entry:
    name: str
    regular: bool
    size: int
    mtime_ns: int

    @property
    def signature(self) -> tuple[bool, int, int]:
        return (self.regular, self.size, self.mtime_ns)


@dataclass(frozen=True, slots=True)
class _Read:
    payload: bytes
    verdict: Verdict | None  # set when refused before parsing
    signature: tuple[bool, int, int]
    changed: bool = False  # grew or was touched while read: not complete yet


class FileDropListener:
    """Polls one :class:`FileDropListenerConfig` directory; journals through ``ingest``."""

    def __init__(self, config: FileDropListenerConfig, ingest: Ingest) -> None:
        self.config = config
        self._ingest = ingest
        self._schema: CdaSchema | None = None
        self._schema_loaded = False
        self._seen: dict[str, tuple[tuple[bool, int, int], float]] = {}
        self._unmovable: dict[str, tuple[bool, int, int]] = {}  # journaled, rename failed
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._poll_lock = asyncio.Lock()
        self._peer = f"filedrop:{config.path}"

    @property
    def directory(self) -> Path:
        return self.config.path

    async def start(self) -> None:
        """Checks the directory, loads the schema, starts polling."""
        cfg = self.config
        if not cfg.path.is_dir():
            raise ConfigError(
                [ConfigIssue(str(cfg.path), 0, 0, f"listener {cfg.name}: not a directory")]
            )
        for sub in (PROCESSED, FAILED):
            (cfg.path / sub).mkdir(exist_ok=True)
        await self._load_schema()
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name=f"filedrop:{cfg.name}")
        log.info(
            "listener %s: watching a directory every %g s (settle %g s, schema %s)",
            cfg.name,
            cfg.interval,
            cfg.settle,
            "on" if self._schema is not None else "off",
        )

    async def stop(self, grace: float) -> None:
        """Stops polling; a file being taken is finished within ``grace`` s."""
        self._stop.set()
        task, self._task = self._task, None
        if task is None:
            return
        _, pending = await asyncio.wait({task}, timeout=grace)
        if pending:
            task.cancel()
            log.warning("listener %s: file still being taken after %g s", self.config.name, grace)
            await asyncio.wait({task})
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
            await self._load_schema()
            return await self._poll()

    async def _load_schema(self) -> None:
        if not self._schema_loaded:
            self._schema = await run_blocking(schema_for, self.config)
            self._schema_loaded = True

    async def _poll(self) -> int:
        try:
            entries = await run_blocking(_scan, self.config.path, self.config.pattern)
        except OSError as exc:
            log.warning("listener %s: cannot list the directory: %s", self.config.name, exc)
            return 0
        now = time.monotonic()
        ready: list[_Entry] = []
        present = {e.name for e in entries}
        for gone in set(self._seen) - present:
            del self._seen[gone]
        for gone in set(self._unmovable) - present:
            del self._unmovable[gone]
        for entry in entries:
            if self._unmovable.get(entry.name) == entry.signature:
                continue
            known = self._seen.get(entry.name)
            if known is None or known[0] != entry.signature:
                self._seen[entry.name] = (entry.signature, now)
                if self.config.settle > 0:
                    continue
            elif now - known[1] < self.config.settle:
                continue
            ready.append(entry)
        taken = 0
        for entry in ready:
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

    async def _take(self, entry: _Entry) -> bool:
        cfg = self.config
        path = cfg.path / entry.name
        try:
            read = await run_blocking(_read, path, cfg.max_file_bytes)
        except FileNotFoundError:
            self._seen.pop(entry.name, None)
            return False
        except OSError as exc:
            log.warning("listener %s: cannot read a file: %s", cfg.name, exc.strerror)
            return False
        if read.changed or read.signature != entry.signature:  # not complete: wait again
            self._seen[entry.name] = (read.signature, time.monotonic())
            return False
        verdict = read.verdict
        if verdict is None:
            verdict = await run_blocking(examine, read.payload, self._schema)
        record = journal_entry(
            cfg.name, read.payload, verdict, self._peer, keep_payload=read.verdict is None
        )
        result = await self._ingest(record)  # StoreError: the file stays for a later poll
        self._seen.pop(entry.name, None)
        try:
            where = await run_blocking(_move, path, result.message_id, verdict)
        except OSError as exc:
            self._unmovable[entry.name] = entry.signature
            log.error(
                "listener %s: message %d journaled but the file could not be moved (%s); "
                "left in place, taken again when it changes or the engine restarts",
                cfg.name,
                result.message_id,
                exc.strerror,
            )
            return True
        log.info(
            "listener %s: file of %d bytes -> message %d%s, %s, moved to %s/",
            cfg.name,
            entry.size,
            result.message_id,
            " (already journaled)" if result.duplicate else "",
            verdict.outcome,
            where,
        )
        return True


def _scan(directory: Path, pattern: str) -> list[_Entry]:
    """The candidate files, oldest first (hidden, ``*.tmp`` and directories skipped)."""
    found: list[_Entry] = []
    with os.scandir(directory) as listing:
        for item in listing:
            name = item.name
            if name.startswith(".") or name.endswith(".tmp"):
                continue
            if not fnmatch.fnmatchcase(name, pattern):
                continue
            try:
                st = item.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):
                continue
            found.append(_Entry(name, stat.S_ISREG(st.st_mode), st.st_size, st.st_mtime_ns))
    found.sort(key=lambda e: (e.mtime_ns, e.name))
    return found


def _read(path: Path, max_bytes: int) -> _Read:
    """Reads a regular file without following a symbolic link or blocking on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO):  # a symbolic link, a socket
            st = os.lstat(path)
            return _Read(b"", _not_file(), (False, st.st_size, st.st_mtime_ns))
        raise
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        signature = (stat.S_ISREG(st.st_mode), st.st_size, st.st_mtime_ns)
        if not stat.S_ISREG(st.st_mode):
            return _Read(b"", _not_file(), signature)
        if st.st_size > max_bytes:
            return _Read(
                b"",
                Verdict(
                    "too_large",
                    f"file of {st.st_size} bytes is larger than max_file_bytes ({max_bytes}); "
                    "not read",
                ),
                signature,
            )
        data = f.read(max_bytes + 1)
        after = os.fstat(f.fileno())
    changed = len(data) > max_bytes or (after.st_size, after.st_mtime_ns) != signature[1:]
    return _Read(data, None, signature, changed)


def _not_file() -> Verdict:
    return Verdict("not_file", "not a regular file (symbolic link or special file); not read")


def _move(path: Path, message_id: int, verdict: Verdict) -> str:
    """Renames ``path`` into processed/ or failed/ (never overwriting); writes the reason file."""
    sub = PROCESSED if verdict.accepted else FAILED
    folder = path.parent / sub
    folder.mkdir(exist_ok=True)
    base = f"{message_id}-{safe_basename(path.name)}"
    target = folder / base
    n = 1
    while _taken(target) or _taken(folder / (target.name + REASON_SUFFIX)):
        n += 1
        target = folder / f"{message_id}-{n}-{safe_basename(path.name)}"
    if not verdict.accepted:
        reason = f"message {message_id}: rejected ({verdict.outcome})\n{verdict.describe()}\n"
        with open(folder / (target.name + REASON_SUFFIX), "x", encoding="utf-8") as f:
            f.write(reason)
    os.rename(path, target)
    return sub


def _taken(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _factory(config: FileDropListenerConfig, ingest: Ingest) -> FileDropListener:
    return FileDropListener(config, ingest)


register_listener(
    ListenerSpec(
        type_name="filedrop",
        config_model=FileDropListenerConfig,
        factory=_factory,
        summary="CDA R2 documents dropped in a directory: journal each, then move it to "
        "processed/ or failed/ (with the reason)",
    )
)
