"""The drop directory's files: candidates listed, taken ones moved to processed/ or failed/.

Touches: files (lists the watched directory, renames into its subdirectories).
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from connectors._cda_intake import Verdict
from connectors._dropfile import Snapshot

__all__ = [
    "FAILED",
    "PROCESSED",
    "REASON_SUFFIX",
    "TEMPORARY_SUFFIXES",
    "Entry",
    "move",
    "safe_basename",
    "scan",
]

PROCESSED = "processed"
FAILED = "failed"
REASON_SUFFIX = ".reason.txt"
TEMPORARY_SUFFIXES = (".tmp", ".part")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_MAX_NAME = 120


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
class Entry:
    """A candidate file: its name and what ``lstat`` said."""

    name: str
    snapshot: Snapshot


def scan(directory: Path, pattern: str) -> list[Entry]:
    """The candidate names, oldest first (hidden, temporary and directories skipped)."""
    found: list[Entry] = []
    with os.scandir(directory) as listing:
        for item in listing:
            name = item.name
            if name.startswith(".") or name.endswith(TEMPORARY_SUFFIXES):
                continue
            if not fnmatch.fnmatchcase(name, pattern):
                continue
            try:
                st = item.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):
                continue
            found.append(Entry(name, Snapshot.of(st)))
    found.sort(key=lambda e: (e.snapshot.mtime_ns, e.name))
    return found


def move(path: Path, message_id: int, verdict: Verdict) -> str:
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
