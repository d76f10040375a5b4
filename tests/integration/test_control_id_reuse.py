"""A control id reused with another content is a new message; a retransmission is the same
content, whatever its line terminators (eai/store/_journal.py, issue 16 point 1).

Runs on SQLite and PostgreSQL (``journal_url``). The journal is driven directly: alone
(the writer's one-entry path), in one batch (a group commit), and by two stores on one
database whose writes race (two engine nodes).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

import eai.store
from connectors._cda_intake import Verdict, journal_entry
from connectors.mllp._inbound import FrameHandler, Reply, dedup_key
from eai.hl7 import MessageHeader, read_header
from eai.messages import IngestResult, JournalEntry
from eai.store import CONTROL_ID_REUSED, Store, content_lines, insert_entries, list_anomalies
from eai.store.schema import events, messages
from tests._database import database_url

KEY = "mllp-in|APP|FAC|DUP-1"
BODY_A = b"MSH|^~\\&|APP|FAC|||20240101||ADT^A01|DUP-1|P|2.5\rPID|||PAT-A^^^FAC\rPV1|1|I\r"
BODY_B = b"MSH|^~\\&|APP|FAC|||20240102||ADT^A08|DUP-1|P|2.5\rPID|||PAT-B^^^FAC\rPV1|1|O\r"


def hl7(body: bytes, ack: bytes = b"", *, content: bool = True) -> JournalEntry:
    return JournalEntry(
        listener="mllp-in",
        payload=body,
        received_at=datetime.now(UTC),
        dedup_key=KEY,
        dedup_by_content=content,
        control_id="DUP-1",
        message_type="ADT^A01",
        sending_application="APP",
        sending_facility="FAC",
        ack=ack or b"MSH|^~\\&|\rMSA|AA|DUP-1|" + body[-12:],
    )


def crlf(body: bytes) -> bytes:
    return body.replace(b"\r", b"\r\n")


@pytest.fixture
def store(journal_url: str, tmp_path: Path) -> Iterator[Store]:
    s = Store(journal_url, tmp_path / "data", None)
    s.start()
    try:
        yield s
    finally:
        s.close()


def alone(store: Store, entry: JournalEntry) -> IngestResult:
    return store.ingest_blocking(entry, 10)


def batch(store: Store, entries: list[JournalEntry]) -> list[IngestResult]:
    """One group commit, as the writer runs it."""
    with store.engine.connect() as conn, conn.begin():
        return insert_entries(conn, store.cipher, entries)


def rows(store: Store) -> list[dict[str, Any]]:
    with store.engine.connect() as c:
        found = c.execute(select(messages).order_by(messages.c.id)).all()
    return [{**r._asdict(), "payload": store.cipher.open(r.payload)} for r in found]


def kinds(store: Store, mid: int) -> list[tuple[str, str]]:
    with store.engine.connect() as c:
        q = select(events.c.kind, events.c.detail).where(events.c.message_id == mid)
        return [(r.kind, r.detail) for r in c.execute(q.order_by(events.c.id))]


def test_content_lines_ignore_terminators_and_blank_lines() -> None:
    one = b"MSH|a\rPID|b\rPV1|c"
    for variant in (
        one,
        one + b"\r",
        one + b"\r\r",
        crlf(one + b"\r"),
        one.replace(b"\r", b"\n") + b"\n",
        b"\r\n" + one.replace(b"\r", b"\r\r\n") + b"\n\n",
    ):
        assert content_lines(variant) == one
    assert content_lines(b"MSH|a\rPID|b ") != one  # anything else is content


def test_other_content_under_a_known_control_id_is_journaled_routed_and_marked(
    store: Store,
) -> None:
    first = alone(store, hl7(BODY_A))
    second = alone(store, hl7(BODY_B))
    assert not second.duplicate, "the second body was dropped as a retransmission"
    assert second.message_id != first.message_id
    assert second.reuses == first.message_id
    assert first.reuses is None
    a, b = rows(store)
    assert (a["payload"], b["payload"]) == (BODY_A, BODY_B)
    assert b["status"] == "received"  # the pipeline takes it like any other
    assert b["ack"] == hl7(BODY_B).ack  # its own ACK, stored for its own retransmissions
    # the first keeps the plain key (journals written before need no migration); the
    # second's key carries a keyed hash, nothing of the payload
    assert a["dedup_key"] == KEY
    assert b["dedup_key"].startswith(KEY + "|content:")
    assert b"PAT-B" not in b["dedup_key"].encode()
    assert kinds(store, first.message_id) == [
        ("received", kinds(store, first.message_id)[0][1]),
        ("acknowledged", "ack=AA"),
    ]
    reused = [d for k, d in kinds(store, second.message_id) if k == "id_reused"]
    assert len(reused) == 1 and reused[0].startswith("control id reused: message ")
    assert f"message {first.message_id} " in reused[0]
    [anomaly] = list_anomalies(store.engine)
    assert (anomaly.facility, anomaly.message_id, anomaly.control_id) == (
        "FAC",
        second.message_id,
        "DUP-1",
    )
    assert (anomaly.rule, anomaly.severity) == (CONTROL_ID_REUSED, "warn")
    assert "MSH-10" in anomaly.explanation


def test_a_retransmission_is_the_same_lines_whatever_the_terminators(store: Store) -> None:
    first = alone(store, hl7(BODY_A))
    stored = hl7(BODY_A).ack
    for copy in (
        BODY_A,
        crlf(BODY_A),
        BODY_A.replace(b"\r", b"\n"),
        BODY_A.rstrip(b"\r"),
        BODY_A + b"\r\r",
    ):
        again = alone(store, hl7(copy, ack=b"a fresh ACK that must not be sent"))
        assert again == IngestResult(first.message_id, duplicate=True, stored_ack=stored)
    assert len(rows(store)) == 1
    assert list_anomalies(store.engine) == []


def test_each_content_keeps_its_own_ack_and_a_third_one_is_new_again(store: Store) -> None:
    a = alone(store, hl7(BODY_A))
    b = alone(store, hl7(BODY_B))
    # the reusing message's own retransmission (CRLF this time): its stored ACK, no new row
    b_again = alone(store, hl7(crlf(BODY_B), ack=b"another"))
    assert b_again == IngestResult(b.message_id, duplicate=True, stored_ack=hl7(BODY_B).ack)
    a_again = alone(store, hl7(BODY_A.replace(b"\r", b"\n"), ack=b"another"))
    assert a_again == IngestResult(a.message_id, duplicate=True, stored_ack=hl7(BODY_A).ack)
    body_c = BODY_B.replace(b"PAT-B", b"PAT-C")
    c = alone(store, hl7(body_c))
    assert not c.duplicate and c.reuses == a.message_id
    assert [r["payload"] for r in rows(store)] == [BODY_A, BODY_B, body_c]
    assert len(list_anomalies(store.engine)) == 2


def test_in_one_group_commit(store: Store) -> None:
    res = batch(
        store,
        [
            hl7(BODY_A, b"ack A"),
            hl7(BODY_B, b"ack B"),
            hl7(crlf(BODY_B), b"ack B2"),
            hl7(BODY_A.replace(b"\r", b"\n"), b"ack A2"),
        ],
    )
    a, b, b2, a2 = res
    assert not a.duplicate and not b.duplicate
    assert b.reuses == a.message_id
    assert b2 == IngestResult(b.message_id, duplicate=True, stored_ack=b"ack B")
    assert a2 == IngestResult(a.message_id, duplicate=True, stored_ack=b"ack A")
    assert len(rows(store)) == 2
    [anomaly] = list_anomalies(store.engine)
    assert anomaly.message_id == b.message_id
    # against the journal, in a batch: both known, a reuse of each is new again
    body_c = BODY_A.replace(b"PAT-A", b"PAT-C")
    again = batch(store, [hl7(crlf(BODY_B)), hl7(body_c, b"ack C"), hl7(BODY_A)])
    assert again[0] == IngestResult(b.message_id, duplicate=True, stored_ack=b"ack B")
    assert not again[1].duplicate and again[1].reuses == a.message_id
    assert again[2] == IngestResult(a.message_id, duplicate=True, stored_ack=b"ack A")
    assert len(rows(store)) == 3


def test_entries_without_content_check_keep_key_only_dedup(store: Store) -> None:
    """DICOM (SOP Instance UID in the key) and CDA (the content's hash in the key)."""
    first = alone(store, hl7(BODY_A, content=False))
    again = alone(store, hl7(BODY_B, content=False))
    assert again.duplicate and again.message_id == first.message_id
    assert len(rows(store)) == 1


def test_cda_retransmission_ignores_line_terminators() -> None:
    """File drop and HTTP: a document is the same whatever its line terminators (XML
    normalises them to LF when it parses, section 2.11); any other byte is another one."""
    doc = b'<?xml version="1.0"?>\n<ClinicalDocument xmlns="urn:hl7-org:v3">\n</ClinicalDocument>\n'
    verdict = Verdict("accepted")
    key = journal_entry("drop", doc, verdict, "").dedup_key
    assert key is not None
    assert journal_entry("drop", doc.replace(b"\n", b"\r\n"), verdict, "").dedup_key == key
    assert journal_entry("drop", doc.replace(b"\n", b"\r"), verdict, "").dedup_key == key
    assert journal_entry("drop", doc.replace(b"urn", b"URN"), verdict, "").dedup_key != key


class _SpiedCursor:
    """A DBAPI cursor that reports each statement it ran when it is closed."""

    def __init__(self, cursor: Any, on_close: Any) -> None:
        self._cursor, self._on_close, self._ran = cursor, on_close, None

    def execute(self, sql: str, params: Any = ()) -> Any:
        self._ran = (sql, params)
        return self._cursor.execute(sql, params)

    def close(self) -> None:
        self._cursor.close()
        if self._ran is not None:
            self._on_close(*self._ran)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


class _SpiedConnection:
    """A SQLAlchemy connection whose DBAPI cursors (the journal's one-entry statements
    run on them) are :class:`_SpiedCursor`; everything else is the connection's."""

    def __init__(self, conn: Any, on_close: Any) -> None:
        self._conn, self._on_close = conn, on_close

    @property
    def connection(self) -> Any:
        pooled, on_close = self._conn.connection, self._on_close

        class _Dbapi:
            def cursor(self) -> _SpiedCursor:
                return _SpiedCursor(pooled.dbapi_connection.cursor(), on_close)

            def __getattr__(self, name: str) -> Any:
                return getattr(pooled.dbapi_connection, name)

        class _Pooled:
            dbapi_connection = _Dbapi()

            def __getattr__(self, name: str) -> Any:
                return getattr(pooled, name)

        return _Pooled()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


@pytest.mark.parametrize("same_content", [True, False], ids=["retransmission", "reuse"])
def test_two_nodes_racing_on_one_control_id(
    journal_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, same_content: bool
) -> None:
    """Node 2 looks the key up, node 1 commits the same key, node 2 inserts: the unique
    index refuses node 2's row, and its writer runs the write again, which then sees node
    1's message: a retransmission (stored ACK) or a reuse (a new message), never an error."""
    node1 = Store(journal_url, tmp_path / "data", None)
    node2 = Store(journal_url, tmp_path / "data", None)
    node1.start()
    node2.start()
    armed = threading.Event()
    raced: list[IngestResult] = []

    def after_lookup(sql: str, params: Any) -> None:
        """Called when one of node 2's cursors closes: after its lookup of KEY, node 1
        journals KEY before node 2 goes on (its lookup result is now stale)."""
        values = params.values() if isinstance(params, dict) else params
        if armed.is_set() and sql.lstrip().upper().startswith("SELECT") and KEY in values:
            armed.clear()
            raced.append(node1.ingest_blocking(hl7(BODY_A, b"ack of node 1"), 10))

    real_insert = eai.store.insert_entries

    def insert_on_node2(conn: Any, cipher: Any, entries: Any) -> Any:
        if conn.engine is node2.engine:
            conn = _SpiedConnection(conn, after_lookup)
        return real_insert(conn, cipher, entries)

    monkeypatch.setattr(eai.store, "insert_entries", insert_on_node2)
    try:
        armed.set()
        body = BODY_A if same_content else BODY_B
        res = node2.ingest_blocking(hl7(crlf(body), b"ack of node 2"), 10)
    finally:
        node2.close()
        node1.close()
    [won] = raced
    assert not won.duplicate
    if same_content:
        assert res == IngestResult(won.message_id, duplicate=True, stored_ack=b"ack of node 1")
    else:
        assert not res.duplicate and res.reuses == won.message_id
    with node1.engine.connect() as c:
        count = c.execute(select(func.count()).select_from(messages)).scalar_one()
    node1.engine.dispose()
    assert count == (1 if same_content else 2)


# -- the MLLP listener's side: its dedup key, its answer and its log ------------------


def _header(msh: bytes) -> MessageHeader:
    return read_header(msh + b"\r", default_charset="UNICODE UTF-8")


def test_dedup_key_parts_cannot_run_into_each_other() -> None:
    """With ``#`` as field separator a sender can put ``|`` in MSH-3/4: escaped, two
    senders' keys cannot meet (else one's message is the other's "retransmission")."""
    one = _header(b"MSH#^~\\&#A|B#C###20240101##ADT^A01#X1#P#2.5")
    two = _header(b"MSH#^~\\&#A#B|C###20240101##ADT^A01#X1#P#2.5")
    assert (one.sending_application, two.sending_facility) == ("A|B", "B|C")
    assert dedup_key("l", one) != dedup_key("l", two)
    assert dedup_key("l", _header(b"MSH|^~\\&|APP|FAC|||20240101||ADT^A01|X1|P|2.5")) == (
        "l|APP|FAC|X1"  # plain values: the key journals written before hold
    )
    long_id = "9" * 199
    msh = b"MSH|^~\\&|A|F|||1||ADT^A01|%s|P|2.5"
    key = dedup_key("x" * 64, _header(msh % long_id.encode()))
    assert long_id not in key and len(key) + len("|content:") + 40 <= 512
    hashed = key.rsplit("|", 1)[1]
    lookalike = _header(msh % hashed.encode())
    assert dedup_key("x" * 64, lookalike) != key


def test_the_listener_answers_a_reuse_with_its_own_ack_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(database_url(tmp_path / "j.db"), tmp_path, None)
    store.start()
    handler = FrameHandler(
        listener="mllp-in",
        ingest=store.ingest,
        allowed_senders=None,
        default_charset="UNICODE UTF-8",
        max_message_bytes=100_000,
    )

    async def go() -> list[Reply]:
        return [
            await handler.on_frame(body, "127.0.0.1:5000")
            for body in (BODY_A, BODY_B, crlf(BODY_B), BODY_A + b"\r")
        ]

    try:
        with caplog.at_level(logging.DEBUG):
            a, b, b_again, a_again = asyncio.run(go())
    finally:
        store.close()
    assert (a.outcome, b.outcome, b_again.outcome, a_again.outcome) == (
        "accepted",
        "accepted",
        "duplicate",
        "duplicate",
    )
    assert a.ack is not None and b.ack is not None and a.ack != b.ack
    assert (b_again.ack, a_again.ack) == (b.ack, a.ack)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "DUP-1" in warnings[0] and "reused" in warnings[0]
    assert "PAT-A" not in caplog.text and "PAT-B" not in caplog.text


_SEGMENT = st.binary(min_size=1, max_size=30).filter(lambda b: b"\r" not in b and b"\n" not in b)
_EOLS = st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b"\r\r", b"\n\r\n"]), min_size=1)


@given(st.lists(_SEGMENT, min_size=1, max_size=8), st.data())
def test_content_lines_of_any_terminators_are_the_cr_form(
    segments: list[bytes], data: st.DataObject
) -> None:
    """Any mix of terminators (and blank lines) between and after the same segments gives
    the CR form; another segment list gives another result."""
    ends = [b"".join(data.draw(_EOLS)) for _ in segments]
    mixed = b"".join(s + e for s, e in zip(segments, ends, strict=True))
    assert content_lines(mixed) == b"\r".join(segments)
    other = segments[:-1] + [segments[-1] + b"x"]
    assert content_lines(mixed) != content_lines(b"\r".join(other))
