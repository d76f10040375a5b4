"""Every ``eai`` command exits with one of eai.errors.EXIT_CODES, printed by ``eai --help``:
one test per code, through eai.cli.main as the console script runs it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click
import pytest

from eai.admin import EngineNotRunning
from eai.cli import cli, main
from eai.errors import (
    EXIT_CODES,
    ConfigError,
    ConfigIssue,
    ExitCode,
    NotFound,
    StoreError,
)

VALID_INS = ("279035121518989", "--oid", "1.2.250.1.213.1.4.8")
MISSING = Path("/nonexistent-eai-test-dir/routes.yaml")


def _exit(argv: list[str]) -> int:
    """The exit status of ``eai ARGV`` (0 when main returns)."""
    try:
        main(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


@pytest.fixture
def raising(monkeypatch: pytest.MonkeyPatch) -> Callable[[Exception], None]:
    """Adds ``eai boom``, which raises the exception given."""

    def install(error: Exception) -> None:
        @click.command("boom")
        def boom() -> None:
            raise error

        monkeypatch.setitem(cli.commands, "boom", boom)

    return install


def test_the_table_is_in_eai_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit(["--help"]) == 0
    out = capsys.readouterr().out
    assert "Exit codes:" in out
    for code, meaning in EXIT_CODES.items():
        assert f"  {int(code)}  {meaning}" in out
    assert [int(c) for c in EXIT_CODES] == [0, 1, 2, 3, 4] == [int(c) for c in ExitCode]


def test_0_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit(["identity", "check-ins", *VALID_INS]) == ExitCode.OK
    assert capsys.readouterr().out.strip() == "valid INS-NIR"


def test_1_problem_found(
    capsys: pytest.CaptureFixture[str], raising: Callable[[Exception], None]
) -> None:
    assert _exit(["identity", "check-ins", "279035121518988"]) == ExitCode.PROBLEM
    raising(ConfigError([ConfigIssue("routes.yaml", 3, 5, "routes[0].to: unknown key")]))
    capsys.readouterr()
    assert _exit(["boom"]) == ExitCode.PROBLEM
    assert capsys.readouterr().err == "routes.yaml:3:5: routes[0].to: unknown key\n"


def test_2_usage(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert _exit(["no-such-command"]) == ExitCode.USAGE
    assert _exit(["messages", "list", "--limit", "0"]) == ExitCode.USAGE
    capsys.readouterr()
    # no routes.yaml where the command looks: said so, with the ways to name one
    assert _exit(["messages", "list", "-c", str(MISSING)]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"eai: error: -c {MISSING}: no such file: name your routes.yaml with -c FILE or $EAI_CONFIG"
    ]
    monkeypatch.setenv("EAI_CONFIG", str(MISSING))
    assert _exit(["queue", "list"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert f"$EAI_CONFIG names {MISSING}, which does not exist" in err and "-c FILE" in err
    monkeypatch.delenv("EAI_CONFIG")
    monkeypatch.chdir(MISSING.parent.parent)  # /: no routes.yaml there
    for argv in (["replay", "1", "--yes"], ["check"], ["reload"], ["messages", "list"]):
        assert _exit(argv) == ExitCode.USAGE
        err = capsys.readouterr().err
        assert "no routes.yaml in /: run eai where routes.yaml is" in err
        assert "-c FILE or $EAI_CONFIG" in err


def test_3_not_found(
    capsys: pytest.CaptureFixture[str], raising: Callable[[Exception], None]
) -> None:
    raising(NotFound("no message with id 999"))
    assert _exit(["boom"]) == ExitCode.NOT_FOUND
    assert capsys.readouterr().err == "eai: error: no message with id 999\n"


def test_4_unavailable(
    capsys: pytest.CaptureFixture[str], raising: Callable[[Exception], None]
) -> None:
    raising(StoreError("cannot open the journal: OperationalError"))
    assert _exit(["boom"]) == ExitCode.UNAVAILABLE
    raising(EngineNotRunning(Path("/run/eai/admin.sock"), "No such file or directory"))
    assert _exit(["boom"]) == ExitCode.UNAVAILABLE
    assert "none answers on /run/eai/admin.sock" in capsys.readouterr().err
