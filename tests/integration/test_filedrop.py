"""The filedrop listener on real directories: complete files only, journal, then move."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from connectors.filedrop import FileDropListener, FileDropListenerConfig, safe_basename
from eai.errors import ConfigError
from eai.registry import listeners
from tests._listeners import FakeJournal, run
from tests._paths import CDA

pytestmark = pytest.mark.integration

TSH = CDA / "BIO-CR-BIO_2024.01_TSH_1.xml"
CANARY = "CANARY-filedrop-7d2e"


def _config(directory: Path, **fields: Any) -> FileDropListenerConfig:
    data: dict[str, Any] = {"name": "cda-drop", "path": str(directory), "interval": "50ms"}
    data.update(fields)
    return FileDropListenerConfig.model_validate(data)


@asynccontextmanager
async def running(
    journal: FakeJournal, directory: Path, **fields: Any
) -> AsyncIterator[FileDropListener]:
    listener = FileDropListener(_config(directory, **fields), journal)
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


def _invalid_tsh() -> bytes:
    return TSH.read_bytes().replace(b"<title>", b"<bogus/><title>", 1)


def test_registered_as_filedrop() -> None:
    assert listeners()["filedrop"].config_model is FileDropListenerConfig


def test_config_is_strict(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        _config(tmp_path, surprise=1)
    with pytest.raises(ValidationError, match="path separators"):
        _config(tmp_path, pattern="../*.xml")
    with pytest.raises(ValidationError):
        _config(tmp_path, interval=0)
    cfg = _config(tmp_path, settle="2s")
    assert (cfg.settle, cfg.interval, cfg.pattern) == (2.0, 0.05, "*.xml")
    for name, info in FileDropListenerConfig.model_fields.items():
        assert info.description, name


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("CR TSH (1).xml", "CR_TSH__1_.xml"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\evil.xml", "evil.xml"),
        (".hidden.xml", "hidden.xml"),
        ("été;rm -rf.xml", "_t__rm_-rf.xml"),
        ("", "document"),
    ],
)
def test_safe_basename(name: str, safe: str) -> None:
    assert safe_basename(name) == safe


def test_safe_basename_is_bounded() -> None:
    long = safe_basename("x" * 500 + ".xml")
    assert len(long) <= 120 and long.endswith(".xml")


def test_valid_document_journaled_then_moved_to_processed(tmp_path: Path) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with running(journal, tmp_path, settle=0):
            (tmp_path / "CR TSH.xml").write_bytes(TSH.read_bytes())
            await wait_for(lambda: _files(tmp_path / "processed") != [])
        assert _files(tmp_path / "processed") == ["1-CR_TSH.xml"]
        assert (tmp_path / "processed" / "1-CR_TSH.xml").read_bytes() == TSH.read_bytes()
        assert not (tmp_path / "CR TSH.xml").exists()
        assert _files(tmp_path / "failed") == []
        [entry] = journal.entries
        assert entry.status == "received" and entry.content_type == "cda"
        assert entry.payload == TSH.read_bytes()
        assert entry.message_type == "CDA^11502-2"
        assert entry.control_id == "1.2.250.1.213.1.1.1.55.2024.9.1"
        assert entry.sending_facility == "1120459876"
        assert entry.listener == "cda-drop"
        assert entry.dedup_key is not None and entry.dedup_key.startswith("cda-drop|cda|received|")
        assert "CR TSH" not in entry.peer  # no file name (it may carry a patient's name)

    run(scenario())


@pytest.mark.parametrize(
    ("payload", "expect"),
    [
        (_invalid_tsh(), "does not conform to the CDA schema"),
        (b"<ClinicalDocument xmlns='urn:hl7-org:v3'><oops></ClinicalDocument>", "not well-formed"),
        (
            f'<!DOCTYPE d [<!ENTITY x SYSTEM "file:///{CANARY}">]><d>&x;</d>'.encode(),
            "declares entities",
        ),
        (b"<Bundle xmlns='http://hl7.org/fhir'/>", "not a CDA document"),
    ],
    ids=["schema", "malformed", "xxe", "not_cda"],
)
def test_bad_document_journaled_rejected_and_moved_to_failed(
    tmp_path: Path, payload: bytes, expect: str
) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with running(journal, tmp_path, settle=0):
            (tmp_path / "bad.xml").write_bytes(payload)
            await wait_for(lambda: len(_files(tmp_path / "failed")) == 2)
        assert _files(tmp_path / "failed") == ["1-bad.xml", "1-bad.xml.reason.txt"]
        assert (tmp_path / "failed" / "1-bad.xml").read_bytes() == payload
        reason = (tmp_path / "failed" / "1-bad.xml.reason.txt").read_text()
        assert reason.startswith("message 1: rejected")
        assert expect in reason
        [entry] = journal.entries
        assert entry.status == "rejected" and entry.content_type == "cda"
        assert expect in entry.reject_reason
        assert entry.payload == payload

    run(scenario())


def test_schema_reason_lists_errors_with_line_numbers(tmp_path: Path) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with running(journal, tmp_path, settle=0):
            (tmp_path / "bad.xml").write_bytes(_invalid_tsh())
            await wait_for(lambda: len(_files(tmp_path / "failed")) == 2)
        line = next(
            i for i, text in enumerate(_invalid_tsh().splitlines(), 1) if b"<bogus/>" in text
        )
        reason = (tmp_path / "failed" / "1-bad.xml.reason.txt").read_text()
        assert f"line {line}: Element '{{urn:hl7-org:v3}}bogus'" in reason
        assert f"line {line}:" in journal.entries[0].reject_reason

    run(scenario())


def test_temporary_and_hidden_names_wait_for_the_rename(tmp_path: Path) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with running(journal, tmp_path, settle=0) as listener:
            (tmp_path / "doc.xml.tmp").write_bytes(TSH.read_bytes()[:1000])
            (tmp_path / ".doc2.xml").write_bytes(TSH.read_bytes()[:1000])
            (tmp_path / "notes.txt").write_text("not matching the pattern")
            for _ in range(3):
                await listener.poll()
            assert journal.entries == []
            (tmp_path / "doc.xml.tmp").write_bytes(TSH.read_bytes())
            os.rename(tmp_path / "doc.xml.tmp", tmp_path / "doc.xml")
            await wait_for(lambda: _files(tmp_path / "processed") != [])
        assert len(journal.entries) == 1 and journal.entries[0].status == "received"
        assert sorted(_files(tmp_path)) == [".doc2.xml", "failed", "notes.txt", "processed"]

    run(scenario())


def test_growing_file_taken_only_once_size_is_stable(tmp_path: Path) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        data = TSH.read_bytes()
        # Not started: each poll() is one listing, so the test controls the clock of polls.
        listener = FileDropListener(_config(tmp_path, settle="200ms"), journal)
        target = tmp_path / "growing.xml"
        with open(target, "wb") as f:
            f.write(data[:5000])
            f.flush()
            assert await listener.poll() == 0  # first sight
            await asyncio.sleep(0.25)
            f.write(data[5000:20000])
            f.flush()
            assert await listener.poll() == 0  # changed: the settle time starts again
            await asyncio.sleep(0.05)
            f.write(data[20000:])
            f.flush()
            assert await listener.poll() == 0
        assert await listener.poll() == 0  # unchanged, but not for 200 ms yet
        await asyncio.sleep(0.25)
        assert await listener.poll() == 1
        assert journal.entries[0].payload == data
        assert journal.entries[0].status == "received"

    run(scenario())


def test_journal_failure_leaves_the_file_for_a_later_poll(tmp_path: Path) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        journal.fail = True
        listener = FileDropListener(_config(tmp_path, settle=0), journal)
        (tmp_path / "a.xml").write_bytes(TSH.read_bytes())
        (tmp_path / "b.xml").write_bytes(_invalid_tsh())
        assert await listener.poll() == 0
        assert await listener.poll() == 0
        assert sorted(_files(tmp_path)) == ["a.xml", "b.xml"]
        assert journal.entries == []
        journal.fail = False
        assert await listener.poll() == 2
        assert _files(tmp_path / "processed") == ["1-a.xml"]
        assert _files(tmp_path / "failed") == ["2-b.xml", "2-b.xml.reason.txt"]

    run(scenario())


def test_same_document_dropped_twice_keeps_its_first_id(tmp_path: Path) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        listener = FileDropListener(_config(tmp_path, settle=0), journal)
        (tmp_path / "doc.xml").write_bytes(TSH.read_bytes())
        assert await listener.poll() == 1
        (tmp_path / "doc.xml").write_bytes(TSH.read_bytes())  # e.g. resent after a crash
        assert await listener.poll() == 1
        assert len(journal.entries) == 1
        assert _files(tmp_path / "processed") == ["1-2-doc.xml", "1-doc.xml"]

    run(scenario())


def test_symlink_is_not_followed(tmp_path: Path) -> None:
    async def scenario() -> None:
        secret = tmp_path.parent / f"{tmp_path.name}-secret.xml"
        secret.write_text(f"<secret>{CANARY}</secret>")
        drop = tmp_path / "drop"
        drop.mkdir()
        (drop / "link.xml").symlink_to(secret)
        journal = FakeJournal()
        listener = FileDropListener(_config(drop, settle=0), journal)
        assert await listener.poll() == 1
        [entry] = journal.entries
        assert entry.status == "rejected" and entry.payload == b""
        assert "not a regular file" in entry.reject_reason
        assert (drop / "failed" / "1-link.xml").is_symlink()
        assert secret.read_text() == f"<secret>{CANARY}</secret>"
        assert CANARY not in (drop / "failed" / "1-link.xml.reason.txt").read_text()

    run(scenario())


def test_oversize_file_rejected_unread(tmp_path: Path) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        listener = FileDropListener(_config(tmp_path, settle=0, max_file_bytes=1000), journal)
        (tmp_path / "big.xml").write_bytes(TSH.read_bytes())
        (tmp_path / "big2.xml").write_bytes(TSH.read_bytes()[:-1])
        assert await listener.poll() == 2
        assert [e.status for e in journal.entries] == ["rejected", "rejected"]
        assert all(e.payload == b"" and e.dedup_key is None for e in journal.entries)
        assert "larger than max_file_bytes" in journal.entries[0].reject_reason
        assert len(_files(tmp_path / "failed")) == 4

    run(scenario())


def test_schema_validation_can_be_turned_off(tmp_path: Path) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        listener = FileDropListener(_config(tmp_path, settle=0, validate_schema=False), journal)
        (tmp_path / "doc.xml").write_bytes(_invalid_tsh())
        assert await listener.poll() == 1
        assert journal.entries[0].status == "received"

    run(scenario())


def test_missing_directory_or_schema_fails_at_start(tmp_path: Path) -> None:
    async def scenario() -> None:
        with pytest.raises(ConfigError, match="not a directory"):
            await FileDropListener(_config(tmp_path / "nope"), FakeJournal()).start()
        bad = FileDropListener(_config(tmp_path, cda_schema=str(tmp_path / "x.xsd")), FakeJournal())
        with pytest.raises(ConfigError, match="CDA schema not found"):
            await bad.start()

    run(scenario())


def test_listener_survives_its_directory_vanishing(tmp_path: Path) -> None:
    async def scenario() -> None:
        drop = tmp_path / "drop"
        drop.mkdir()
        journal = FakeJournal()
        async with running(journal, drop, settle=0) as listener:
            (drop / "processed").rmdir()
            (drop / "failed").rmdir()
            drop.rmdir()
            assert await listener.poll() == 0
            drop.mkdir()
            (drop / "doc.xml").write_bytes(TSH.read_bytes())
            await wait_for(lambda: _files(drop / "processed") != [])
        assert journal.entries[0].status == "received"

    run(scenario())


def test_stop_waits_for_a_file_being_journaled(tmp_path: Path) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        journal.gate = asyncio.Event()
        listener = FileDropListener(_config(tmp_path, settle=0), journal)
        await listener.start()
        (tmp_path / "doc.xml").write_bytes(TSH.read_bytes())
        await wait_for(lambda: journal.calls == 1)
        stopping = asyncio.create_task(listener.stop(5.0))
        await asyncio.sleep(0.1)
        assert not stopping.done()
        journal.gate.set()
        await stopping
        assert _files(tmp_path / "processed") == ["1-doc.xml"]

    run(scenario())


def test_file_that_cannot_be_moved_is_not_journaled_again(tmp_path: Path) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        listener = FileDropListener(_config(tmp_path, settle=0), journal)
        (tmp_path / "processed").write_text("a file where the directory should be")
        (tmp_path / "doc.xml").write_bytes(TSH.read_bytes())
        assert await listener.poll() == 1
        assert await listener.poll() == 0
        assert len(journal.entries) == 1 and (tmp_path / "doc.xml").exists()
        (tmp_path / "processed").unlink()
        restarted = FileDropListener(_config(tmp_path, settle=0), journal)
        assert await restarted.poll() == 1
        assert _files(tmp_path / "processed") == ["1-doc.xml"]
        assert len(journal.entries) == 1

    run(scenario())
