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
* ``journal_url`` (function, parametrized ``sqlite`` / ``postgresql``): URL of an empty
  journal database on each backend; the PostgreSQL parameter carries the ``postgres``
  marker.

Tests that make SQLAlchemy engines must ``engine.dispose()`` them: warnings are errors,
and a connection left open is reported as a ResourceWarning.

* ``_engine_database`` (session, automatic): with ``EAI_TEST_DATABASE=postgresql`` the
  engines of the tests journal to PostgreSQL, a new database each (see
  ``tests/_database.py``), dropped after the test module (``_drop_engine_databases``,
  on a thread);
  the server is started only then.

Network helper: ``standins.net.free_port()``.

Markers follow folders (:func:`pytest_collection_modifyitems`): ``tests/unit`` -> ``unit``
(no I/O, enforced by ``tests/unit/conftest.py``), ``tests/integration`` -> ``integration``,
``tests/fault`` -> ``fault``, ``tests/fuzz`` -> ``fuzz``, ``tests/contract`` -> ``contract``;
a test carrying another folder's marker is a collection error (move the file instead).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests import _database
from tests._postgres import PostgresServer, PostgresStartError, PostgresUnavailable

#: Folder under ``tests/`` -> the marker every test in it carries.
FOLDER_MARKERS = {
    "unit": "unit",
    "integration": "integration",
    "fault": "fault",
    "fuzz": "fuzz",
    "contract": "contract",
}
_TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks each test by its folder; refuses a test marked as belonging to another folder."""
    wrong: list[str] = []
    for item in items:
        try:
            folder = item.path.resolve().relative_to(_TESTS).parts[0]
        except (ValueError, IndexError):
            continue
        marker = FOLDER_MARKERS.get(folder)
        if marker is None:
            continue
        item.add_marker(marker)
        others = {m.name for m in item.iter_markers()} & set(FOLDER_MARKERS.values()) - {marker}
        if others:
            wrong.append(f"{item.nodeid}: marked {', '.join(sorted(others))} in tests/{folder}/")
    if wrong:
        raise pytest.UsageError("markers must match folders:\n" + "\n".join(wrong))


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


@pytest.fixture(scope="session", autouse=True)
def _engine_database(request: pytest.FixtureRequest) -> Iterator[None]:
    """``EAI_TEST_DATABASE=postgresql``: the engine tests' journals on the test server."""
    try:
        backend = _database.engine_database()
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    if backend != "postgresql":
        yield
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    _database.use_postgres(lambda: server.url(server.create_database()))
    try:
        yield
    finally:
        _database.use_postgres(None)


@pytest.fixture(scope="session")
def _database_dropper(postgres_server: PostgresServer) -> Iterator[Callable[[list[str]], None]]:
    """Drops databases on a thread of its own: a DROP DATABASE takes about a second
    (a checkpoint), which would count against the timeout of a module's last test."""
    names: queue.SimpleQueue[str | None] = queue.SimpleQueue()
    failures: list[str] = []

    def drop_them() -> None:
        while (name := names.get()) is not None:
            try:
                postgres_server.drop_database(name)
            except Exception as exc:  # noqa: BLE001 - reported at the session's end
                failures.append(f"{name}: {exc}")

    def enqueue(batch: list[str]) -> None:
        for name in batch:
            names.put(name)

    thread = threading.Thread(target=drop_them, name="drop-test-databases", daemon=True)
    thread.start()
    try:
        yield enqueue
    finally:
        names.put(None)
        thread.join(600)
    assert not thread.is_alive() and not failures, failures


@pytest.fixture(scope="module", autouse=True)
def _drop_engine_databases(request: pytest.FixtureRequest) -> Iterator[None]:
    """``EAI_TEST_DATABASE=postgresql``: the databases the module's engines journaled to
    are dropped after it (one per test: a whole run would keep hundreds on disk)."""
    if _database.engine_database() != "postgresql":
        yield
        return
    drop: Callable[[list[str]], None] = request.getfixturevalue("_database_dropper")
    yield
    drop(_database.made_databases())


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


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def journal_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLAlchemy URL of an empty journal database, once per backend.

    ``sqlite``: a file in ``tmp_path``; ``postgresql``: ``fresh_postgres_db`` (the
    server is only started when a PostgreSQL parameter runs).
    """
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/j.db"
    url: str = request.getfixturevalue("fresh_postgres_db")
    return url
