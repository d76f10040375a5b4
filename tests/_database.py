"""Which database the engines of the tests journal to: ``EAI_TEST_DATABASE``.

Touches: files (rewrites a test's routes.yaml), nothing else.

``EAI_TEST_DATABASE=postgresql`` runs the engines of the tests on PostgreSQL:
``tests/conftest.py`` then starts the test server (``tests/_postgres.py``) once and hands
its database maker to :func:`use_postgres`, and :func:`on_test_database` points each
routes.yaml that would journal to SQLite (its ``engine.database`` absent or ``sqlite:``)
at a new, empty PostgreSQL database before an engine reads it
(``tests.engine_harness.EngineThread``, ``tests._proc.EaiProcess``). A file already
pointed at PostgreSQL is left as it is, so an engine restarted on the same file finds
its journal, and so does one that writes its routes.yaml anew for the same data dir
(one database per SQLite file). Unset (or ``sqlite``): SQLite, as the file says.

A test that builds a ``Store`` itself names its SQLite file through :func:`database_url`
(the same PostgreSQL database as an engine journaling to that file); one that reads or
alters the journal behind the engine's back goes through ``tests/_journal_db.py``.

Tests about SQLite itself (its file on a full disk, a locked file, the modes of eai.db
and its WAL, the SQLite fast insert path, callers committing inline) carry the marker
``sqlite_only`` and say why in their docstring or a comment; the PostgreSQL runs
deselect them (``-m "not sqlite_only"``: not skipped). ``make pytest-postgres`` (in
``make test``) runs the contract suite, the engine flow and the fault tests so;
``make pytest-postgres-all`` the whole suite (not in ``make test``: too long for CI).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import yaml

__all__ = [
    "DATABASES",
    "database_url",
    "engine_database",
    "made_databases",
    "on_test_database",
    "use_postgres",
]

DATABASES = ("sqlite", "postgresql")
"""The values of ``EAI_TEST_DATABASE`` ("" = sqlite)."""

_new_postgres_url: Callable[[], str] | None = None
_by_file: dict[Path, str] = {}
"""The PostgreSQL database standing for each SQLite journal file: a test that writes its
routes.yaml anew for a second engine on the same data dir (a restart), or opens a
``Store`` on the file its engine journals to, finds the same journal there."""


def engine_database() -> str:
    """The backend the engine tests journal to (``EAI_TEST_DATABASE``, default sqlite)."""
    name = os.environ.get("EAI_TEST_DATABASE", "") or "sqlite"
    if name not in DATABASES:
        raise ValueError(f"EAI_TEST_DATABASE={name!r}: expected one of {', '.join(DATABASES)}")
    return name


def use_postgres(new_url: Callable[[], str] | None) -> None:
    """Set by ``tests/conftest.py``: makes a new empty database on the test server and
    returns its SQLAlchemy URL (None: the server is gone)."""
    global _new_postgres_url
    _new_postgres_url = new_url
    _by_file.clear()


def made_databases() -> list[str]:
    """The names of the databases made since the last call, forgotten now: ``conftest``
    drops them after each test module (a whole run would otherwise keep hundreds)."""
    names = [url.rpartition("/")[2] for url in _by_file.values()]
    _by_file.clear()
    return names


def _new_database() -> str:
    if _new_postgres_url is None:
        raise RuntimeError("EAI_TEST_DATABASE=postgresql: no test server (tests/conftest.py)")
    return _new_postgres_url()


def database_url(sqlite_file: Path) -> str:
    """The journal URL for a test that builds a ``Store`` itself: ``sqlite:///<file>``,
    or on PostgreSQL a new database for that file (the same one when named again, so a
    test that reopens its journal finds it)."""
    if engine_database() != "postgresql":
        return f"sqlite:///{sqlite_file}"
    key = sqlite_file.resolve()
    if key not in _by_file:
        _by_file[key] = _new_database()
    return _by_file[key]


_SQLITE_DATABASE = re.compile(r"""(["']?database["']?\s*:\s*)["']?sqlite:[^\s,}"']*["']?""")
_ENGINE_FLOW = re.compile(r"""^(["']?engine["']?\s*:\s*\{)""", re.M)
_ENGINE_BLOCK = re.compile(r"""^engine:[ \t]*\n([ \t]+)""", re.M)


def on_test_database(path: Path) -> Path:
    """Points the routes.yaml at ``path`` at a new PostgreSQL database when the engine
    tests run on PostgreSQL and it would journal to SQLite (see the module docstring)."""
    if engine_database() != "postgresql":
        return path
    text = path.read_text()
    loaded = yaml.safe_load(text) or {}
    engine = loaded.get("engine") or {}
    database = str(engine.get("database", ""))
    if database and not database.startswith("sqlite:"):
        return path  # PostgreSQL already (its own, or a restart on the same file)
    data_dir = str(engine.get("data_dir", "./var"))
    sqlite_file = database.removeprefix("sqlite:///") if database else f"{data_dir}/eai.db"
    url = f'"{database_url(path.parent / sqlite_file)}"'  # quoted: JSON, flow mappings too
    if "engine" not in loaded and not text.lstrip().startswith("{"):
        new, n = f"{text.rstrip()}\nengine:\n  database: {url}\n", 1
    elif database:
        new, n = _SQLITE_DATABASE.subn(lambda m: f"{m.group(1)}{url}", text, count=1)
    elif _ENGINE_FLOW.search(text):
        new, n = _ENGINE_FLOW.subn(lambda m: f"{m.group(1)}database: {url}, ", text, count=1)
    else:
        new, n = _ENGINE_BLOCK.subn(
            lambda m: f"engine:\n{m.group(1)}database: {url}\n{m.group(1)}", text, count=1
        )
    if n != 1:
        raise ValueError(f"{path}: cannot point engine.database at PostgreSQL")
    path.write_text(new)
    return path
