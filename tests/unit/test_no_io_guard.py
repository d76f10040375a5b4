"""tests/unit is marked ``unit`` by its folder and refuses I/O (tests/unit/conftest.py)."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys

import pytest

from tests.unit.conftest import UnitTestIOError


def test_the_folder_marks_its_tests_unit(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("unit") is not None
    assert request.node.get_closest_marker("integration") is None


def test_sockets_cannot_bind_or_connect() -> None:
    with socket.socket() as sock:
        with pytest.raises(UnitTestIOError, match="socket.bind"):
            sock.bind(("127.0.0.1", 0))
        with pytest.raises(UnitTestIOError, match="socket.connect"):
            sock.connect(("127.0.0.1", 9))


def test_sqlite_and_subprocesses_are_refused() -> None:
    with pytest.raises(UnitTestIOError, match="sqlite3.connect"):
        sqlite3.connect(":memory:")
    with pytest.raises(UnitTestIOError, match="subprocess"):
        subprocess.run([sys.executable, "-c", "pass"], check=False)


def test_temporary_files_are_refused(request: pytest.FixtureRequest) -> None:
    with pytest.raises(UnitTestIOError, match="tmp_path"):
        request.getfixturevalue("tmp_path")
