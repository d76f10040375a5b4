"""Plugin commands under a group: ``eai identity standin`` is declared in eai.plugins, listed
by ``eai identity --help`` from its summary and loaded only when it runs."""

import click
import pytest
from click.testing import CliRunner

from eai import registry
from eai.cli import cli
from eai.cli._lazy import LazyGroup
from eai.registry import CommandSpec


@click.command()
def hello() -> None:
    """Say hello from inside a group."""
    click.echo("hello")


def test_a_plugin_command_declared_under_a_group_is_listed_and_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loads: list[str] = []

    def load() -> click.Command:
        loads.append("hello")
        return hello

    monkeypatch.setattr(registry, "_commands", {"grp hello": CommandSpec("grp hello", load, "Hi.")})

    @click.group(cls=LazyGroup, plugin_path="grp")
    def grp() -> None:
        """A group."""

    runner = CliRunner()
    listed = runner.invoke(grp, ["--help"])
    assert listed.exit_code == 0 and "hello  Hi." in listed.output
    assert loads == []  # listing loads nothing
    top = runner.invoke(cli, ["--help"])
    assert "grp hello" not in top.output and " hello " not in top.output
    ran = runner.invoke(grp, ["hello"])
    assert (ran.exit_code, ran.output, loads) == (0, "hello\n", ["hello"])


def test_eai_identity_standin_is_a_declared_plugin_command() -> None:
    assert "identity standin" in registry.commands()
    listed = CliRunner().invoke(cli, ["identity", "--help"])
    assert listed.exit_code == 0
    assert "standin    Run the identity-server stand-in" in listed.output
    command = registry.commands()["identity standin"].load()
    assert command.name == "standin"
