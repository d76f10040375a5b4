"""The benches' journal rows per message (bench/_measure.py) on both databases: the
rows present per table, and on PostgreSQL the rows written (inserts, updates, deletes)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine

from bench._measure import COMMITS, journal_rows

pytestmark = pytest.mark.integration


def test_journal_rows_per_message(journal_url: str) -> None:
    engine = create_engine(journal_url)
    try:
        with engine.begin() as c:
            c.exec_driver_sql("CREATE TABLE a (id integer PRIMARY KEY, v integer)")
            c.exec_driver_sql("CREATE TABLE b (id integer PRIMARY KEY)")
            c.exec_driver_sql("CREATE TABLE c (id integer PRIMARY KEY)")
            c.exec_driver_sql("INSERT INTO c VALUES (1)")  # fixed: under 0.01 a message
        for i in range(10):  # one transaction each, as the engine's statements come
            with engine.begin() as c:
                c.exec_driver_sql(f"INSERT INTO a VALUES ({i}, 0)")
                c.exec_driver_sql(f"INSERT INTO b VALUES ({2 * i}), ({2 * i + 1})")
        with engine.begin() as c:
            c.exec_driver_sql("UPDATE a SET v = 1")  # 10 rewrites: not in count(*)
            c.exec_driver_sql("DELETE FROM b WHERE id < 5")
    finally:
        engine.dispose()  # the engines stopped: PostgreSQL's backends flushed their counts

    got = journal_rows(journal_url, 500)
    assert got["count"] == {"a": 0.02, "b": 0.03, "total": 0.05}  # 10, 15, 1 rows
    if journal_url.startswith("postgresql"):
        # 12 transactions committed above (the readings' own roll back), and maybe an
        # autovacuum's
        assert 0.02 <= got["written"].pop(COMMITS) <= 0.04
        # a: 10 inserted + 10 updated; b: 20 inserted + 5 deleted; c: 1 inserted
        assert got["written"] == {"a": 0.04, "b": 0.05, "total": 0.09}
    else:
        assert "written" not in got
