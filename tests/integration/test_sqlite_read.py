"""``eai messages list`` reads a SQLite journal through ``sqlite3`` (``eai.store._sqlite_read``)
and must list exactly what ``eai.store.list_messages`` (SQLAlchemy) lists; everything it
cannot read as is goes through :class:`eai.store.Store`, PostgreSQL included.

No timing here: bench/cli_latency.py measures the start-up.
"""

from __future__ import annotations

import importlib
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import DateTime, insert
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import make_url

from eai import store as journal
from eai.cli import cli
from eai.errors import StoreError
from eai.messages import JournalEntry
from eai.store import Store, insert_entries, list_messages
from eai.store._sql_ahead import TARGET, render
from eai.store._sqlite_read import _read_sqlite, _storage, read_messages, sqlite_file
from eai.store.schema import deliveries, patient_ids

pytestmark = pytest.mark.integration

KEY = "11" * 32
T0 = datetime(2026, 12, 1, 8, 0, 0)
"""A whole second: a ``since``/``until`` equal to it compares as SQLAlchemy's string does."""


def test_the_compiled_sql_is_what_the_statements_compile_to_now() -> None:
    """``_listing_sql`` is generated from ``_listing``'s Core statements and ``_schema``:
    after changing either, ``python -m eai.store._sql_ahead --write``. The same text
    whatever else is imported: ``_audit`` adds its tables to the schema's metadata,
    and ``eai messages list`` never imports it."""
    importlib.import_module("eai.store._audit")
    assert TARGET.read_text() == render()


@pytest.mark.parametrize(
    "url",
    ["sqlite:///var/eai.db", "sqlite:////abs/dir/eai.db", "sqlite:///./a b/x@y.db", "sqlite:///e"],
)
def test_sqlite_file_is_the_file_sqlalchemy_opens(url: str) -> None:
    assert sqlite_file(url) == Path(str(make_url(url).database))


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite:///eai.db?mode=ro",
        "sqlite:///a%20b.db",
        "sqlite+pysqlite:///eai.db",
        "postgresql+psycopg://u@h/db",
    ],
)
def test_any_other_url_is_left_to_sqlalchemy(url: str) -> None:
    assert sqlite_file(url) is None


@pytest.mark.parametrize(
    "value", [T0, T0.replace(microsecond=5), datetime(999, 1, 2, 3, 4, 5, 123456)]
)
def test_datetimes_are_bound_and_read_as_sqlalchemy_does(value: datetime) -> None:
    dialect = sqlite_dialect.dialect()
    impl = DateTime().dialect_impl(dialect)
    bind, result = impl.bind_processor(dialect), impl.result_processor(dialect, None)
    assert bind is not None and result is not None
    stored = bind(value)
    assert _storage(value) == stored
    assert datetime.fromisoformat(stored) == result(stored) == value


def _journal(store: Store) -> None:
    """Messages of every kind the filters tell apart, with deliveries and patients."""
    entries = []
    kinds = [
        ("adt", "ADT^A01", "received"),
        ("adt", "ADT^A08", "processed"),
        ("lab", "ORU^R01", "processed"),
        ("lab", "ORU^R01^ORU_R01", "rejected"),
        ("adt", "ADT", "filtered"),
    ]
    for i in range(15):
        listener, message_type, status = kinds[i % len(kinds)]
        entries.append(
            JournalEntry(
                listener,
                f"MSH|^~\\&|A|CHU-X|||||{message_type}|C{i}|P|2.5\r".encode(),
                (T0 + timedelta(minutes=i, microseconds=i % 2)).replace(tzinfo=UTC),
                status=status,  # type: ignore[arg-type]
                control_id=f"C{i}",
                message_type=message_type,
                sending_application="A",
                sending_facility="CHU-X",
                reject_reason="bad" if status == "rejected" else "",
            )
        )
    ref = {"study_instance_uid": "1.2.3", "series_instance_uid": "1.2.3.4"}
    entries.append(
        JournalEntry(
            "img",
            json.dumps({**ref, "sop_instance_uid": "1.2.3.4.5"}).encode(),
            (T0 + timedelta(hours=1)).replace(tzinfo=UTC),
            content_type="dicom",
            control_id="1.2.3.4.5",
            message_type="DICOM^CT",
        )
    )
    with store.engine.begin() as conn:
        ids = [r.message_id for r in insert_entries(conn, store.cipher, entries)]
        for n, mid in enumerate(ids[:10]):
            conn.execute(
                insert(patient_ids).values(
                    message_id=mid, id_hash=store.cipher.hash_id(f"IPP{n % 3}")
                )
            )
            for dest, status in (("out", "delivered"), ("dmp", "retrying"))[: 1 + n % 2]:
                conn.execute(
                    insert(deliveries).values(
                        message_id=mid,
                        destination=dest,
                        route="r",
                        patient_key="k",
                        status=status,
                        attempts=n,
                        created_at=T0,
                        next_attempt_at=T0 + timedelta(seconds=n),
                        delivered_at=T0 if status == "delivered" else None,
                        last_error="" if status == "delivered" else "refused",
                    )
                )


FILTERS: list[dict[str, Any]] = [
    {},
    {"limit": None},
    {"limit": 1},
    {"status": "processed"},
    {"since": T0 + timedelta(minutes=4)},  # equal to a row's time: included
    {"until": T0 + timedelta(minutes=4)},
    {"since": T0 + timedelta(minutes=2), "until": T0 + timedelta(minutes=9), "limit": 3},
    {"listener": "lab"},
    {"message_type": "ADT"},  # ADT itself and its events
    {"message_type": "ORU^R01"},
    {"message_type": "ADT", "status": "processed"},  # an OR within an AND
    {"message_type": "ORU*"},
    {"message_type": "*R01*", "status": "rejected"},
    {"patient": " ipp1 "},
    {"patient": "IPP2", "listener": "adt", "limit": 2},
    {"listener": "nobody"},
]


@pytest.fixture
def store(journal_url: str, tmp_path: Path) -> Iterator[Store]:
    s = Store(journal_url, tmp_path, KEY)
    try:
        _journal(s)
        yield s
    finally:
        s.engine.dispose()


@pytest.mark.parametrize("filters", FILTERS, ids=[str(f) for f in FILTERS])
def test_sqlite3_lists_what_sqlalchemy_lists(
    store: Store, journal_url: str, tmp_path: Path, filters: dict[str, Any]
) -> None:
    """Same rows, order, deliveries, listing fields (the DICOM UIDs) and times. On
    PostgreSQL the same call goes through SQLAlchemy."""
    filters = {"limit": 100, **filters}
    expected = list_messages(store.engine, store.cipher, **filters)
    path = sqlite_file(journal_url)
    if path is not None:
        limit = filters.pop("limit")
        read = _read_sqlite(path, store.cipher, filters, limit)
        assert read is not None  # read with sqlite3, not handed back
        assert read == expected
        filters["limit"] = limit
    assert read_messages(journal_url, tmp_path, KEY, **filters) == expected
    assert expected or filters.get("listener") == "nobody"


def test_messages_list_prints_what_the_journal_holds(
    store: Store, journal_url: str, tmp_path: Path
) -> None:
    """``eai messages list --json`` on either backend (SQLite through sqlite3)."""
    routes = tmp_path / "routes.yaml"
    routes.write_text(f"engine: {{data_dir: '{tmp_path}', database: '{journal_url}'}}\n")
    done = CliRunner(env={"EAI_KEY": KEY}).invoke(
        cli, ["messages", "list", "--json", "--type", "ADT", "-c", str(routes)]
    )
    assert done.exit_code == 0, done.output
    expected = list_messages(store.engine, store.cipher, message_type="ADT", limit=50)
    assert json.loads(done.output) == [m.to_json() for m in expected]
    assert len(expected) == 9


def _sqlite_journal(tmp_path: Path) -> tuple[str, Path]:
    url = f"sqlite:///{tmp_path}/var/eai.db"
    s = Store(url, tmp_path, KEY)
    _journal(s)
    s.engine.dispose()
    return url, tmp_path / "var" / "eai.db"


def test_a_journal_missing_an_index_or_a_column_is_prepared_first(tmp_path: Path) -> None:
    url, db = _sqlite_journal(tmp_path)
    with sqlite3.connect(db) as conn:
        conn.execute("DROP INDEX ix_messages_type")
        conn.execute("ALTER TABLE deliveries DROP COLUMN return_to")
    cipher = journal.Cipher(bytes.fromhex(KEY))
    assert _read_sqlite(db, cipher, {}, 100) is None
    assert len(read_messages(url, tmp_path, KEY, limit=None)) == 16  # through Store
    assert _read_sqlite(db, cipher, {}, 100) is not None  # Store added them back


def test_a_journal_without_its_key_check_yet_is_opened_by_store(tmp_path: Path) -> None:
    url, db = _sqlite_journal(tmp_path)
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM eai_meta")
    cipher = journal.Cipher(bytes.fromhex(KEY))
    assert _read_sqlite(db, cipher, {}, 100) is None
    assert len(read_messages(url, tmp_path, KEY, limit=3)) == 3
    assert _read_sqlite(db, cipher, {}, 100) is not None


def test_another_key_is_refused_as_store_refuses_it(tmp_path: Path) -> None:
    url, _ = _sqlite_journal(tmp_path)
    with pytest.raises(StoreError) as by_store:
        Store(url, tmp_path, "22" * 32)
    with pytest.raises(StoreError) as by_sqlite3:
        read_messages(url, tmp_path, "22" * 32)
    assert str(by_sqlite3.value) == str(by_store.value)
    assert "another key" in str(by_store.value)


def test_a_new_journal_is_created_as_store_creates_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/new/eai.db"
    assert read_messages(url, tmp_path / "data", None) == []
    assert (tmp_path / "new" / "eai.db").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "data" / journal.KEY_FILE).exists()
    assert (
        _read_sqlite(
            tmp_path / "new" / "eai.db",
            journal.Cipher(journal.load_master_key(tmp_path / "data", None)),
            {},
            10,
        )
        == []
    )
