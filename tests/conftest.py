"""Shared pytest fixtures for the eai test suite.

PostgreSQL (marker ``postgres``): a real server is started once per session from
Debian's binaries (see ``tests/_postgres.py``); tests never skip when it is missing,
they fail and say what to install.

* ``postgres_server`` (session): the running :class:`tests._postgres.PostgresServer`
  (``.port``, ``.url(db)``, ``.dsn(db)``, ``.connect(db)``, ``.create_database()``,
  ``.drop_database(name)``, ``.restart(mode)``).
* ``postgres_url`` (session): SQLAlchemy URL of the database ``eai_test``,
  ``postgresql+psycopg://postgres@127.0.0.1:<port>/eai_test``.
* ``fresh_postgres_db`` (function): SQLAlchemy URL of a new, uniquely named, empty
  database, dropped after the test (open connections to it are closed by force).

Tests that make SQLAlchemy engines must ``engine.dispose()`` them: warnings are errors,
and a connection left open is reported as a ResourceWarning.

Network helper: ``tests._net.free_port()``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests._postgres import PostgresServer, PostgresStartError, PostgresUnavailable


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server: PostgresServer | None = None
    error = ""
    try:
        server = PostgresServer().start()
    except (PostgresUnavailable, PostgresStartError) as exc:
        error = f"PostgreSQL test server unavailable: {exc}"
    if server is None:  # fail outside the except block: no chained traceback
        pytest.fail(error, pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    return postgres_server.url(postgres_server.create_database("eai_test"))


@pytest.fixture
def fresh_postgres_db(postgres_server: PostgresServer) -> Iterator[str]:
    name = postgres_server.create_database()
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.drop_database(name)
