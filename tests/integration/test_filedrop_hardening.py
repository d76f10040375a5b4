"""The filedrop listener under attack or a careless writer: incomplete files, links, FIFOs, owners.

Real files, real timing (small ``settle``), bounded waits; issue 16 points 4 and 5.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import socket
import stat
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import connectors._filewatch as fw
import connectors.filedrop as filedrop
from connectors._cda_intake import examine as real_examine
from connectors._dropfile import Limits, Snapshot, refusal
from connectors._filewatch import DirWatch, Event, FileWatcher, open_inotify
from connectors.filedrop import FileDropListener, FileDropListenerConfig
from eai.errors import ConfigError
from eai.messages import IngestResult, JournalEntry
from tests._listeners import FakeJournal, run
from tests._paths import CDA

pytestmark = pytest.mark.integration

TSH = CDA / "BIO-CR-BIO_2024.01_TSH_1.xml"
CANARY = "CANARY-hardening-51c3"
NAME = "DUPONT-Jeanne-CR.xml"  # a name carrying a patient's name: never in the logs

Watch = Callable[[Path], DirWatch | None]


def _no_inotify(directory: Path) -> DirWatch | None:
    return None


WATCHES = pytest.mark.parametrize("watch", [open_inotify, _no_inotify], ids=["inotify", "polling"])


def _config(directory: Path, **fields: Any) -> FileDropListenerConfig:
    data: dict[str, Any] = {"name": "cda-drop", "path": str(directory), "interval": "50ms"}
    data.update(fields)
    return FileDropListenerConfig.model_validate(data)


def _listener(
    journal: Any, directory: Path, watch: Watch = open_inotify, **fields: Any
) -> FileDropListener:
    return FileDropListener(_config(directory, **fields), journal, watch=watch)


@asynccontextmanager
async def running(listener: FileDropListener) -> AsyncIterator[FileDropListener]:
    await listener.start()
    try:
        yield listener
    finally:
        await listener.stop(2.0)


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


def test_inotify_is_available_here(tmp_path: Path) -> None:
    watch = open_inotify(tmp_path)
    assert watch is not None  # the tests below that rely on inotify really use it
    watch.close()


def test_paused_writer_is_taken_whole_once_it_closes(tmp_path: Path) -> None:
    data = TSH.read_bytes()
    half = len(data) // 2

    async def scenario() -> None:
        journal = FakeJournal()
        async with running(_listener(journal, tmp_path, settle="100ms")):
            with open(tmp_path / NAME, "wb") as f:
                f.write(data[:half])
                f.flush()
                await asyncio.sleep(0.6)  # six settle times, a dozen listings
                assert journal.calls == 0
                assert _files(tmp_path) == [NAME, "failed", "processed"]
                f.write(data[half:])
            await wait_for(lambda: _files(tmp_path / "processed") != [])
        [entry] = journal.entries
        assert entry.status == "received" and entry.payload == data
        assert _files(tmp_path / "failed") == []

    run(scenario())


@WATCHES
def test_write_then_rename_is_taken(tmp_path: Path, watch: Watch) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        listener = _listener(journal, tmp_path, watch, settle=0, pattern="*")
        async with running(listener):
            for temporary in (".doc.xml", "doc.xml.tmp", "doc.xml.part"):
                (tmp_path / temporary).write_bytes(TSH.read_bytes()[:500])
            for _ in range(3):
                await listener.poll()
            assert journal.calls == 0
            (tmp_path / "doc.xml.part").write_bytes(TSH.read_bytes())
            os.rename(tmp_path / "doc.xml.part", tmp_path / "doc.xml")
            await wait_for(lambda: _files(tmp_path / "processed") != [])
        assert [e.payload for e in journal.entries] == [TSH.read_bytes()]
        assert _files(tmp_path) == [".doc.xml", "doc.xml.tmp", "failed", "processed"]

    run(scenario())


@WATCHES
def test_file_changed_after_journal_is_not_moved(
    tmp_path: Path, watch: Watch, caplog: pytest.LogCaptureFixture
) -> None:
    class ChangingJournal(FakeJournal):
        """Rewrites the dropped file while its first version is being journaled."""

        async def __call__(self, entry: JournalEntry) -> IngestResult:
            if self.calls == 0:
                with open(tmp_path / "doc.xml", "ab") as f:
                    f.write(b"<!-- second version -->\n")
            return await super().__call__(entry)

    async def scenario() -> None:
        journal = ChangingJournal()
        listener = _listener(journal, tmp_path, watch, settle=0)
        (tmp_path / "doc.xml").write_bytes(TSH.read_bytes())
        assert await listener.poll() == 1
        assert _files(tmp_path) == ["doc.xml"]  # journaled, but not moved
        assert "changed before it was moved" in caplog.text
        assert await listener.poll() == 1  # the second version, now stable
        second = TSH.read_bytes() + b"<!-- second version -->\n"
        assert [e.payload for e in journal.entries] == [TSH.read_bytes(), second]
        assert (tmp_path / "processed" / "2-doc.xml").read_bytes() == second

    caplog.set_level(logging.WARNING, logger="connectors.filedrop")
    run(scenario())


@WATCHES
def test_file_changed_while_examined_is_not_journaled(
    tmp_path: Path, watch: Watch, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = TSH.read_bytes()
    half = len(data) // 2
    calls: list[int] = []

    def examine_then_finish_writing(payload: bytes, schema: Any) -> Any:
        if not calls:
            with open(tmp_path / "doc.xml", "ab") as f:
                f.write(data[half:])
        calls.append(len(payload))
        return real_examine(payload, schema)

    monkeypatch.setattr(filedrop, "examine", examine_then_finish_writing)

    async def scenario() -> None:
        journal = FakeJournal()
        listener = _listener(journal, tmp_path, watch, settle=0)
        (tmp_path / "doc.xml").write_bytes(data[:half])
        assert await listener.poll() == 0
        assert journal.calls == 0 and _files(tmp_path / "failed") == []
        assert await listener.poll() == 1
        assert [e.payload for e in journal.entries] == [data]
        assert journal.entries[0].status == "received"
        assert calls == [half, len(data)]

    run(scenario())


def _outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside.xml"
    secret.write_text(f"<ClinicalDocument xmlns='urn:hl7-org:v3'>{CANARY}</ClinicalDocument>")
    return secret


def _symlink(tmp_path: Path, target: Path) -> None:
    target.symlink_to(_outside(tmp_path))


def _hard_link(tmp_path: Path, target: Path) -> None:
    os.link(_outside(tmp_path), target)


def _fifo(tmp_path: Path, target: Path) -> None:
    os.mkfifo(target)


def _socket(tmp_path: Path, target: Path) -> None:
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(target))


def _regular(tmp_path: Path, target: Path) -> None:
    target.write_bytes(TSH.read_bytes())


REFUSALS = [
    pytest.param(_symlink, {}, "not a regular file (a symbolic link)", id="symlink"),
    pytest.param(_hard_link, {}, "a hard link (2 names for one file)", id="hard_link"),
    pytest.param(_fifo, {}, "not a regular file (a FIFO)", id="fifo"),
    pytest.param(_socket, {}, "not a regular file (a socket)", id="socket"),
    pytest.param(
        _regular, {"owner": os.getuid() + 1}, "not by the configured owner", id="other_owner"
    ),
    pytest.param(
        _regular, {"max_file_bytes": 1000}, "larger than max_file_bytes (1000)", id="too_large"
    ),
]


@pytest.mark.parametrize(("make", "fields", "reason"), REFUSALS)
def test_refused_unread_logged_and_moved_to_failed(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    make: Callable[[Path, Path], None],
    fields: dict[str, Any],
    reason: str,
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()

    async def scenario() -> None:
        journal = FakeJournal()
        listener = _listener(journal, drop, settle=0, **fields)
        make(tmp_path, drop / NAME)
        if not fields:  # a good file beside it is still taken
            (drop / "good.xml").write_bytes(TSH.read_bytes())
        async with asyncio.timeout(10):  # a FIFO must not block the listing
            assert await listener.poll() == (1 if fields else 2)
        refused = [e for e in journal.entries if e.payload == b""]
        assert len(refused) == 1 and refused[0].status == "rejected"
        assert reason in refused[0].reject_reason
        assert refused[0].dedup_key is None
        if not fields:
            assert [e.payload for e in journal.received] == [TSH.read_bytes()]
        failed = _files(drop / "failed")
        [moved] = [n for n in failed if not n.endswith(".reason.txt")]
        assert moved.endswith("-" + NAME) and moved + ".reason.txt" in failed
        assert reason in (drop / "failed" / (moved + ".reason.txt")).read_text()
        assert NAME not in _files(drop)

    caplog.set_level(logging.INFO, logger="connectors")
    run(scenario())
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any(reason in r.getMessage() for r in warnings)
    assert "DUPONT" not in caplog.text and CANARY not in caplog.text
    outside = tmp_path / "outside.xml"
    if outside.exists():  # the linked file is never read, changed or moved
        assert CANARY in outside.read_text() and outside.stat().st_nlink in (1, 2)


def test_hard_link_to_a_file_outside_is_never_read(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()

    async def scenario() -> None:
        journal = FakeJournal()
        listener = _listener(journal, drop, settle=0)
        os.link(_outside(tmp_path), drop / "x.xml")
        assert await listener.poll() == 1
        assert all(CANARY.encode() not in e.payload for e in journal.entries)
        assert all(CANARY not in e.reject_reason for e in journal.entries)
        assert (drop / "failed" / "1-x.xml").samefile(tmp_path / "outside.xml")

    run(scenario())


def test_owner_by_uid_or_name(tmp_path: Path) -> None:
    me = pwd.getpwuid(os.getuid()).pw_name

    async def scenario() -> None:
        for owner in (os.getuid(), str(os.getuid()), me):
            journal = FakeJournal()
            listener = _listener(journal, tmp_path, settle=0, owner=owner)
            (tmp_path / "doc.xml").write_bytes(TSH.read_bytes())
            assert await listener.poll() == 1
            assert [e.status for e in journal.entries] == ["received"]
        unknown = _listener(FakeJournal(), tmp_path, owner="no-such-user-eai-16")
        with pytest.raises(ConfigError, match="no user 'no-such-user-eai-16'"):
            await unknown.start()

    run(scenario())


def test_owner_config_is_checked(tmp_path: Path) -> None:
    for bad in (-1, "", " root", "root:root"):
        with pytest.raises(ValidationError, match="owner"):
            _config(tmp_path, owner=bad)
    assert _config(tmp_path).owner is None


def test_replaced_by_another_inode_waits_for_settle(tmp_path: Path) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        listener = _listener(journal, tmp_path, _no_inotify, settle="150ms")
        target = tmp_path / "doc.xml"
        target.write_bytes(TSH.read_bytes())
        assert await listener.poll() == 0
        stat = target.stat()
        other = tmp_path / ".next"
        other.write_bytes(TSH.read_bytes())
        os.utime(other, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size, same mtime
        os.rename(other, target)
        await asyncio.sleep(0.2)
        assert await listener.poll() == 0  # another inode: the settle time starts again
        await asyncio.sleep(0.2)
        assert await listener.poll() == 1

    run(scenario())


def test_hard_link_to_a_file_that_keeps_changing_is_still_refused(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    outside = _outside(tmp_path)
    os.link(outside, drop / "x.xml")

    async def scenario() -> None:
        journal = FakeJournal()
        async with running(_listener(journal, drop, settle="100ms")):
            with open(outside, "ab") as log_file:  # e.g. a link to a log that is always written
                for _ in range(200):
                    log_file.write(b"<!-- line -->\n")
                    log_file.flush()
                    if _files(drop / "failed"):
                        break
                    await asyncio.sleep(0.01)
        assert _files(drop / "failed") == ["1-x.xml", "1-x.xml.reason.txt"]
        [entry] = journal.entries
        assert entry.payload == b"" and "a hard link" in entry.reject_reason

    run(scenario())


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        (stat.S_IFCHR, "a character device"),
        (stat.S_IFBLK, "a block device"),
        (stat.S_IFDIR, "a directory"),
        (stat.S_IFLNK, "a symbolic link"),
    ],
)
def test_special_kinds_are_refused_by_their_snapshot(kind: int, text: str) -> None:
    snap = Snapshot(1, 2, kind, 1, os.getuid(), 0, 0, 0)
    verdict = refusal(snap, Limits(max_bytes=10))
    assert verdict is not None and verdict.outcome == "not_file"
    assert verdict.reason == f"not a regular file ({text}); not read"
    assert refusal(Snapshot(1, 2, stat.S_IFREG, 1, os.getuid(), 10, 0, 0), Limits(10)) is None


def test_watch_follows_a_recreated_directory(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    data = TSH.read_bytes()

    async def scenario() -> None:
        journal = FakeJournal()
        listener = _listener(journal, drop, settle="50ms")
        assert await listener.poll() == 0
        drop.rename(tmp_path / "old-drop")
        drop.mkdir()
        assert await listener.poll() == 0  # sees the directory replaced: watches the new one
        with open(drop / "doc.xml", "wb") as f:
            f.write(data[:1000])
            f.flush()
            for _ in range(4):  # four settle times: still open, not taken
                assert await listener.poll() == 0
                await asyncio.sleep(0.06)
            f.write(data[1000:])
        for _ in range(4):
            await listener.poll()
            await asyncio.sleep(0.06)
        assert [e.payload for e in journal.entries] == [data]

    run(scenario())


class ScriptedWatch(DirWatch):
    """A watch whose events are given by the test, one batch per refresh."""

    def __init__(self, directory: Path, batches: list[list[Event]]) -> None:
        st = os.stat(directory)
        super().__init__(os.open(os.devnull, os.O_RDONLY), (st.st_dev, st.st_ino))
        self.batches = batches

    def read(self) -> list[Event] | None:
        return self.batches.pop(0) if self.batches else []


def test_watcher_states_from_events(tmp_path: Path) -> None:
    batches = [
        [Event(fw.IN_CREATE, "a"), Event(fw.IN_OPEN, "a"), Event(fw.IN_MODIFY, "a")],
        [Event(fw.IN_Q_OVERFLOW, "")],
        [Event(fw.IN_OPEN, "b")],  # a reader, or a writer that has not written yet
        [Event(fw.IN_CLOSE_NOWRITE, "b"), Event(fw.IN_MODIFY, "c")],  # c: opened before
        [Event(fw.IN_OPEN, "c"), Event(fw.IN_CLOSE_NOWRITE, "c")],  # a reader of c comes and goes
        [Event(fw.IN_CLOSE_WRITE, "c")],
        [Event(fw.IN_OPEN, "d"), Event(fw.IN_MODIFY, "d"), Event(fw.IN_MOVED_FROM, "d")],
    ]
    watcher = FileWatcher(tmp_path, lambda d: ScriptedWatch(d, batches))
    watcher.refresh()
    assert watcher.active
    watcher.refresh()
    assert watcher.busy("a")
    token = watcher.token("a")
    watcher.refresh()  # overflow: nothing known any more, every token stale
    assert not watcher.busy("a") and watcher.changed_since("a", token)
    watcher.refresh()
    assert watcher.busy("b")
    watcher.refresh()
    assert not watcher.busy("b") and watcher.busy("c")
    token = watcher.token("c")
    watcher.refresh()
    assert watcher.busy("c") and not watcher.changed_since("c", token)  # reads change nothing
    watcher.refresh()
    assert not watcher.busy("c") and watcher.changed_since("c", token)
    watcher.refresh()
    assert not watcher.busy("d")  # renamed away: that name is free
    watcher.close()
    assert not watcher.active


def test_file_held_open_by_a_reader_waits_until_closed(tmp_path: Path) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        listener = _listener(journal, tmp_path, settle=0)
        assert await listener.poll() == 0  # the watch is on
        (tmp_path / "doc.xml").write_bytes(TSH.read_bytes())
        with open(tmp_path / "doc.xml", "rb"):
            assert await listener.poll() == 0
        assert await listener.poll() == 1

    run(scenario())
