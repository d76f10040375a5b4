"""Unit tests do no I/O: no sockets, no SQLite, no subprocess, no temporary files.

Each unit test runs with ``socket.socket.connect``/``connect_ex``/``bind``, ``sqlite3.connect``
and ``subprocess.Popen`` raising, and ``tmp_path``/``tmp_path_factory`` refused, so a test
that needs them fails here and belongs in ``tests/integration/``. Reading package data and
fixtures is allowed.
"""

from __future__ import annotations

import socket
import sqlite3
import subprocess
from typing import Any, NoReturn

import pytest

from eai import plugins

# The bundled plugins register on import, and some probe the system then (the file
# drop's ctypes.util.find_library runs a subprocess): import them before the guard.
plugins.load_builtin()

_MOVE = "move this test to tests/integration/"


class UnitTestIOError(AssertionError):
    """A unit test tried to do I/O; move it to tests/integration/."""


def _refuse(what: str) -> Any:
    def refuse(*args: object, **kwargs: object) -> NoReturn:
        raise UnitTestIOError(
            f"unit tests do no I/O ({what}): move this test to tests/integration/"
        )

    return refuse


@pytest.fixture(autouse=True)
def _no_io(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("connect", "connect_ex", "bind"):
        monkeypatch.setattr(socket.socket, name, _refuse(f"socket.{name}"))
    monkeypatch.setattr(sqlite3, "connect", _refuse("sqlite3.connect"))
    monkeypatch.setattr(subprocess.Popen, "__init__", _refuse("subprocess"))


@pytest.fixture
def tmp_path() -> NoReturn:
    raise UnitTestIOError(
        "unit tests write no files (tmp_path): move this test to tests/integration/"
    )


@pytest.fixture
def tmp_path_factory() -> NoReturn:
    raise UnitTestIOError(f"unit tests write no files (tmp_path_factory): {_MOVE}")
