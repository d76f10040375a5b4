"""The real-PostgreSQL fixtures work: a server answers, databases are isolated."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tests._postgres import PostgresServer

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def test_select_one(postgres_url: str) -> None:
    url = make_url(postgres_url)
    assert url.drivername == "postgresql+psycopg"
    assert url.host == "127.0.0.1"
    assert url.database == "eai_test"
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("select 1")).scalar_one() == 1
            assert conn.execute(sa.text("select current_database()")).scalar_one() == "eai_test"
            # Durability defaults are kept.
            assert conn.execute(sa.text("show fsync")).scalar_one() == "on"
            assert conn.execute(sa.text("show synchronous_commit")).scalar_one() == "on"
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_fresh_db_is_isolated(
    postgres_url: str, fresh_postgres_db: str, postgres_server: PostgresServer
) -> None:
    assert fresh_postgres_db != postgres_url
    assert make_url(fresh_postgres_db).port == make_url(postgres_url).port
    assert _tables(fresh_postgres_db) == set()

    engine = sa.create_engine(fresh_postgres_db)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("create table only_here (id int primary key)"))
            conn.execute(sa.text("insert into only_here values (1)"))
    finally:
        engine.dispose()

    assert _tables(fresh_postgres_db) == {"only_here"}
    assert "only_here" not in _tables(postgres_url)

    # A second fresh database is empty, and dropping one with a connection still
    # open works (the fixture drops with FORCE).
    other = postgres_server.create_database()
    try:
        assert _tables(postgres_server.url(other)) == set()
        with postgres_server.connect(other) as conn:
            conn.execute("select 1")
            postgres_server.drop_database(other)
        with postgres_server.connect() as conn:
            row = conn.execute("select 1 from pg_database where datname = %s", (other,)).fetchone()
        assert row is None
    finally:
        postgres_server.drop_database(other)


def test_fresh_db_differs_per_test(fresh_postgres_db: str) -> None:
    # Each test gets its own database: the table made in the test above is not here.
    assert _tables(fresh_postgres_db) == set()
