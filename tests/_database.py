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
(one database per data dir). Unset (or ``sqlite``): SQLite, as the file says.

Tests about SQLite itself (``tests/fault/test_journal_full.py``: the SQLite file on a
full disk, a locked SQLite file) mean nothing on PostgreSQL: ``make pytest-postgres``
leaves them out, and ``tests/fault/test_kill9.py`` too (20 restarts within a budget
sized for SQLite's start-up; the contract suite kills -9 on PostgreSQL as well).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import yaml

__all__ = ["DATABASES", "engine_database", "on_test_database", "use_postgres"]

DATABASES = ("sqlite", "postgresql")
"""The values of ``EAI_TEST_DATABASE`` ("" = sqlite)."""

_new_postgres_url: Callable[[], str] | None = None
_by_data_dir: dict[Path, str] = {}
"""The PostgreSQL database given to each data dir: a test that writes its routes.yaml
anew for a second engine on the same data dir (a restart) finds its journal there."""


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
    _by_data_dir.clear()


_SQLITE_DATABASE = re.compile(r"""(["']?database["']?\s*:\s*)["']?sqlite:[^\s,}"']*["']?""")
_ENGINE_FLOW = re.compile(r"""^(["']?engine["']?\s*:\s*\{)""", re.M)
_ENGINE_BLOCK = re.compile(r"""^engine:[ \t]*\n([ \t]+)""", re.M)


def on_test_database(path: Path) -> Path:
    """Points the routes.yaml at ``path`` at a new PostgreSQL database when the engine
    tests run on PostgreSQL and it would journal to SQLite (see the module docstring)."""
    if engine_database() != "postgresql":
        return path
    if _new_postgres_url is None:
        raise RuntimeError("EAI_TEST_DATABASE=postgresql: no test server (tests/conftest.py)")
    text = path.read_text()
    loaded = yaml.safe_load(text) or {}
    engine = loaded.get("engine") or {}
    database = str(engine.get("database", ""))
    if database and not database.startswith("sqlite:"):
        return path  # PostgreSQL already (its own, or a restart on the same file)
    data_dir = (path.parent / str(engine.get("data_dir", "."))).resolve()
    if data_dir not in _by_data_dir:
        _by_data_dir[data_dir] = _new_postgres_url()
    url = f'"{_by_data_dir[data_dir]}"'  # quoted: JSON and flow mappings take it too
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
