"""A click group whose subcommands are declared as data and imported only when needed.

Touches: nothing (a subcommand's module is imported when that subcommand runs or shows
its help, never to list it).

Click's lazy group pattern: ``eai --help`` lists every subcommand from its declared
summary; ``eai messages list`` imports :mod:`eai.cli._support_cmds` and nothing of the
other commands (their SQLAlchemy, config models, pydicom stay unloaded). The core's
subcommands are declared in :data:`eai.cli.COMMANDS`; the plugins' in
:data:`eai.plugins.COMMANDS` (a name with a space, ``"identity standin"``, is a command
of a sub-group) and by :func:`eai.registry.register_command`.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import click

__all__ = ["LazyCommand", "LazyGroup", "load_target", "plugin_commands"]


@dataclass(frozen=True, slots=True)
class LazyCommand:
    """A subcommand known by its summary until it is needed: ``load`` imports it."""

    load: Callable[[], click.Command]
    summary: str


def load_target(target: str) -> click.Command:
    """The click command at ``"package.module:attribute"``, imported."""
    module, _, attribute = target.partition(":")
    command = getattr(importlib.import_module(module), attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{target} is not a click command")
    return command


def plugin_commands(group_path: str = "") -> dict[str, LazyCommand]:
    """The plugin commands right under the group at ``group_path`` (``""``: ``eai``),
    by their name in it.

    Until a plugin is imported, :mod:`eai.registry` (and pydantic with it) is not needed
    to know them: the bundled ones are the data of :data:`eai.plugins.COMMANDS`, and a
    plugin that registers a command of its own imports the registry first. So the
    registry is asked only once something has imported it.
    """
    found: dict[str, LazyCommand] = {}
    registry = sys.modules.get("eai.registry")
    if registry is None:
        from eai import plugins

        for path, target, summary in plugins.COMMANDS:
            found[path] = LazyCommand(_loader(target), summary)
    else:
        for path, spec in registry.commands().items():
            found[path] = LazyCommand(spec.load, spec.summary)
    prefix = f"{group_path} " if group_path else ""
    out: dict[str, LazyCommand] = {}
    for path, command in found.items():
        name = path[len(prefix) :]
        if path.startswith(prefix) and name and " " not in name:
            out[name] = command
    return out


def _loader(target: str) -> Callable[[], click.Command]:
    return lambda: load_target(target)


class LazyGroup(click.Group):
    """A group with three kinds of subcommands: those added to it (as any click group),
    ``lazy`` ones (name -> ``(module:attribute, summary)``) and the plugins' commands
    declared under ``plugin_path`` (``""``: the ``eai`` command itself; ``None``: none).

    Listing (``--help``, "no such command" suggestions, completion of names) reads
    the summaries; :meth:`get_command` imports the one asked for."""

    def __init__(
        self,
        *args: Any,
        lazy: Mapping[str, tuple[str, str]] | None = None,
        plugin_path: str | None = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = {
            name: LazyCommand(_loader(target), summary)
            for name, (target, summary) in (lazy or {}).items()
        }
        self.plugin_path = plugin_path

    def declared(self) -> dict[str, LazyCommand]:
        """The subcommands not imported yet, by name (the group's own ones win over a
        plugin's of the same name)."""
        plugins = {} if self.plugin_path is None else plugin_commands(self.plugin_path)
        return {**plugins, **self.lazy}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.declared()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The subcommand, imported if need be. It is not added to the group: a plugin
        command stays one of the group's only while it is declared (and the import
        system keeps the module, so asking again costs a dictionary lookup)."""
        command = self.commands.get(cmd_name)
        if command is None:
            declared = self.declared().get(cmd_name)
            if declared is None:
                return None
            command = declared.load()
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of ``--help``: a command not imported yet is shown by its
        summary (nothing is imported to list it)."""
        declared = self.declared()
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows: list[tuple[str, str]] = []
        for name in names:
            command = self.commands.get(name) or click.Command(name, help=declared[name].summary)
            if not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)
