"""Spool retention: removes instances whose deliveries all succeeded, after a delay.

Touches: files (the spool directories of ``dicom`` listeners); reads the journal
only through :class:`eai.registry.JournalView`.

The engine runs :func:`run_retention` every ``INTERVAL`` seconds (a
:class:`eai.registry.PeriodicSpec`, on the engine's APScheduler, one run at a
time). For each ``dicom`` listener, spool files older than its ``retention``
are candidates; each one's journal key is looked up: listener | calling AE |
``sha256:`` digest of the SOP Instance UID, read from the sealed file's clear
retention tag (:mod:`dicom_router._sealing`: no key needed); for a file spooled
before encryption, listener | Source AE Title | Media Storage SOP Instance UID
from its File Meta Information (the dedup key of that time):

* settled before now - ``retention`` (filtered, or every delivery delivered):
  the file is removed;
* journaled, not settled (pending, retrying, dead, held, resent): kept, so
  ``eai resend`` still works for a dead-lettered instance;
* not journaled at all ``ORPHAN_GRACE`` past ``retention`` (a crash between
  the rename and the commit: the sender got no success and sent it again):
  moved to ``quarantine/`` with that reason, never silently deleted.

Rejected instances are in ``quarantine/`` already and are never removed here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pydicom.filereader import read_file_meta_info

from dicom_router._sealing import read_tag
from dicom_router.scp import DicomListenerConfig
from dicom_router.spool import Spool, is_spool_name
from eai.config import Config
from eai.errors import StoreError
from eai.net import run_blocking
from eai.registry import JournalView, PeriodicSpec, register_periodic

__all__ = ["INTERVAL", "ORPHAN_GRACE", "RetentionReport", "retention_pass", "run_retention"]

log = logging.getLogger(__name__)

INTERVAL = 60.0
"""Seconds between two retention runs."""
ORPHAN_GRACE = 3600.0
"""Seconds past ``retention`` before a never-journaled spool file is quarantined."""
_BATCH = 2000


@dataclass
class RetentionReport:
    removed: int = 0
    kept: int = 0
    orphans: int = 0
    unreadable: int = 0
    names: list[str] = field(default_factory=list)


async def run_retention(config: Config, journal: JournalView) -> None:
    """One retention run over every ``dicom`` listener of ``config``."""
    for lst in config.listeners:
        if isinstance(lst, DicomListenerConfig):
            try:
                report = await retention_pass(lst, journal)
            except StoreError as exc:
                log.error("retention %s: %s", lst.name, exc)
                continue
            if report.removed or report.orphans or report.unreadable:
                log.info(
                    "retention %s: %d removed, %d kept, %d orphan(s) quarantined, %d unreadable",
                    lst.name,
                    report.removed,
                    report.kept,
                    report.orphans,
                    report.unreadable,
                )


async def retention_pass(
    cfg: DicomListenerConfig, journal: JournalView, now: datetime | None = None
) -> RetentionReport:
    """Removes the settled instances of one listener's spool (see the module docstring)."""
    now = now or datetime.now(UTC).replace(tzinfo=None)
    spool = Spool(cfg.spool_dir.absolute())
    cutoff = now - timedelta(seconds=cfg.retention)
    report = RetentionReport()
    candidates = await run_blocking(_candidates, spool, cutoff.replace(tzinfo=UTC).timestamp())
    for start in range(0, len(candidates), _BATCH):
        batch = candidates[start : start + _BATCH]
        keyed = await run_blocking(_keys, cfg.name, spool, batch)
        states = await journal.settled([k for _, k, _ in keyed if k], cutoff)
        orphan_before = cutoff.replace(tzinfo=UTC).timestamp() - ORPHAN_GRACE
        await run_blocking(_settle, spool, keyed, states, orphan_before, report)
    return report


def _candidates(spool: Spool, before: float) -> list[tuple[str, float]]:
    """(name, mtime) of the spool files last modified before ``before`` (epoch s)."""
    out: list[tuple[str, float]] = []
    try:
        entries = list(spool.instances.iterdir())
    except FileNotFoundError:
        return out
    for path in entries:
        if not is_spool_name(path.name):
            continue
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            continue
        if mtime < before:
            out.append((path.name, mtime))
    return sorted(out)


def _keys(
    listener: str, spool: Spool, batch: list[tuple[str, float]]
) -> list[tuple[str, str, float]]:
    """(name, journal key or '' when its file meta cannot be read, mtime)."""
    out = []
    for name, mtime in batch:
        key = ""
        path = spool.instances / name
        try:
            with open(path, "rb") as f:
                head = f.read(512)
        except OSError:
            head = b""
        tag = read_tag(head)
        if tag is not None:
            aet, _, digest = tag.partition("\\")
            if aet and digest.startswith("sha256:"):
                key = f"{listener}|{aet}|{digest}"
            out.append((name, key, mtime))
            continue
        try:
            meta = read_file_meta_info(path) if head else None
        except Exception:  # noqa: BLE001 - pydicom raises many kinds on a bad file
            meta = None
        if meta is not None:
            aet = str(meta.get("SourceApplicationEntityTitle", "")).strip()
            uid = str(meta.get("MediaStorageSOPInstanceUID", "")).strip()
            if aet and uid:
                key = f"{listener}|{aet}|{uid}"
        out.append((name, key, mtime))
    return out


def _settle(
    spool: Spool,
    keyed: list[tuple[str, str, float]],
    states: Mapping[str, bool],
    orphan_before: float,
    report: RetentionReport,
) -> None:
    for name, key, mtime in keyed:
        if not key:
            report.unreadable += 1
            continue
        state = states.get(key)
        if state is True:
            spool.remove(name)
            report.removed += 1
            report.names.append(name)
        elif state is None and mtime < orphan_before:
            try:
                spool.quarantine(name, "never journaled (orphan found by retention)")
                report.orphans += 1
            except StoreError as exc:
                log.error("retention: %s", exc)
        else:
            report.kept += 1


register_periodic(
    PeriodicSpec(
        name="dicom-spool-retention",
        interval=INTERVAL,
        run=run_retention,
        summary="remove spooled DICOM instances delivered (or filtered) longer ago than "
        "the listener's retention",
    )
)
