"""Property tests of filedrop ingestion: any names, any bytes; never a crash, nothing lost.

Every file dropped ends journaled and moved (processed/, or failed/ with its
reason) unless its name marks it temporary; the listener never raises.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.filedrop import (
    FAILED,
    PROCESSED,
    REASON_SUFFIX,
    TEMPORARY_SUFFIXES,
    FileDropListener,
    FileDropListenerConfig,
)
from tests._listeners import FakeJournal
from tests._paths import CDA

pytestmark = pytest.mark.fuzz

TSH = (CDA / "BIO-CR-BIO_2024.01_TSH_1.xml").read_bytes()
NAME_MAX = 255  # bytes, Linux


def _fits(name: str) -> bool:
    try:
        size = len(os.fsencode(name))
    except UnicodeError:
        return False
    return 0 < size <= NAME_MAX and name not in (".", "..", PROCESSED, FAILED)


any_text_name = st.text(
    st.characters(exclude_characters="/\x00", exclude_categories=["Cs"]),
    min_size=1,
    max_size=80,
)
hostile_names = st.sampled_from(
    [
        "..xml",
        "...",
        "..\\..\\etc\\passwd.xml",
        "%2e%2e%2fetc%2fpasswd.xml",
        "-rf.xml",
        " .xml",
        "\n.xml",
        "CON.xml",
        "a\\b.xml",
        "x" * NAME_MAX,
        "é" * (NAME_MAX // 2),
        "🩺" * (NAME_MAX // 4),
        "1-doc.xml",
        "doc.xml.reason.txt",
        "doc.XML",
        "doc.xml.tmp",
        "doc.xml.part",
        ".hidden",
    ]
)
names = st.one_of(any_text_name, hostile_names).filter(_fits)
contents = st.one_of(
    st.binary(max_size=600),
    st.just(b""),
    st.just(b"\x00" * 64),
    st.just(TSH),
    st.integers(0, len(TSH)).map(lambda n: TSH[:n]),
    st.integers(0, len(TSH)).map(lambda n: TSH[:n] + b"\x00" + TSH[n:]),
)
kinds = st.sampled_from(["file", "file", "file", "symlink", "hard_link", "fifo"])
drops = st.dictionaries(names, st.tuples(kinds, contents), min_size=1, max_size=8)


def _ignored(name: str) -> bool:
    return name.startswith(".") or name.endswith(TEMPORARY_SUFFIXES)


def _make(directory: Path, outside: Path, name: str, kind: str, payload: bytes) -> None:
    target = directory / name
    if kind == "fifo":
        os.mkfifo(target)
        return
    if kind == "file":
        target.write_bytes(payload)
        return
    source = outside / f"{len(list(outside.iterdir()))}.xml"
    source.write_bytes(payload)
    if kind == "symlink":
        target.symlink_to(source)
    else:
        os.link(source, target)


async def _ingest_all(
    directory: Path, outside: Path, files: dict[str, tuple[str, bytes]]
) -> FakeJournal:
    journal = FakeJournal()
    config = FileDropListenerConfig.model_validate(
        {"name": "fuzz-drop", "path": str(directory), "pattern": "*", "settle": 0}
    )
    listener = FileDropListener(config, journal)
    for sub in (PROCESSED, FAILED):
        (directory / sub).mkdir()
    for name, (kind, payload) in files.items():
        _make(directory, outside, name, kind, payload)
    async with asyncio.timeout(60):
        for _ in range(3):  # every file is complete: the first poll takes them all
            await listener.poll()
    await listener.stop(1.0)
    return journal


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(drops)
def test_every_dropped_file_is_journaled_and_moved(files: dict[str, tuple[str, bytes]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory, outside = Path(tmp) / "drop", Path(tmp) / "outside"
        directory.mkdir()
        outside.mkdir()
        journal = asyncio.run(_ingest_all(directory, outside, files))
        left = {p.name for p in directory.iterdir()} - {PROCESSED, FAILED}
        assert left == {n for n in files if _ignored(n)}
        taken = [n for n in files if not _ignored(n)]
        processed = sorted((directory / PROCESSED).iterdir())
        in_failed = {p.name for p in (directory / FAILED).iterdir()}
        failed = sorted(directory / FAILED / n for n in in_failed if n + REASON_SUFFIX in in_failed)
        assert in_failed == {p.name for p in failed} | {p.name + REASON_SUFFIX for p in failed}
        assert len(processed) + len(failed) == len(taken)
        received = {e.payload for e in journal.received}
        for path in processed:
            assert path.read_bytes() in received
        for path in failed:
            reason = (directory / FAILED / (path.name + REASON_SUFFIX)).read_text()
            assert reason.startswith("message ") and "rejected" in reason
        for entry in journal.entries:
            assert entry.status == "received" or entry.reject_reason
        kept = [e.payload for e in journal.entries if e.dedup_key is not None]
        assert len(set(kept)) == len(kept)  # the same bytes twice: one message
        refused = [n for n in taken if files[n][0] != "file"]
        assert len([e for e in journal.rejected if e.dedup_key is None]) >= len(refused)
        dropped = {payload for kind, payload in files.values() if kind == "file"}
        payloads = {e.payload for e in journal.entries}
        for source in outside.iterdir():  # a linked file is never read
            assert source.read_bytes() in dropped | {b""} or source.read_bytes() not in payloads
        for path in [*processed, *failed]:  # names the engine made: no separators, bounded
            assert len(path.name) <= 140 and "/" not in path.name and "\\" not in path.name
