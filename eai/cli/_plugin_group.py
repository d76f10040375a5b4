"""A click group that also lists and runs the plugin commands declared under it.

Touches: nothing (a plugin command's module is imported only when that command runs).

A plugin command's name is its path under ``eai``: ``"dicom"`` is ``eai dicom``,
``"identity standin"`` is ``eai identity standin`` (:func:`eai.registry.commands`).
``--help`` lists a plugin command from its summary, without importing it.
"""

from __future__ import annotations

from typing import Any

import click

from eai import registry

__all__ = ["PluginGroup"]


class PluginGroup(click.Group):
    """The group's own commands, then the plugins' commands declared under ``plugin_path``
    (``""``: the ``eai`` command itself)."""

    def __init__(self, *args: Any, plugin_path: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plugin_path = plugin_path

    def plugin_commands(self) -> dict[str, registry.CommandSpec]:
        """The plugin commands right under this group, by their name in it."""
        prefix = f"{self.plugin_path} " if self.plugin_path else ""
        found: dict[str, registry.CommandSpec] = {}
        for path, spec in registry.commands().items():
            name = path[len(prefix) :]
            if path.startswith(prefix) and name and " " not in name:
                found[name] = spec
        return found

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.plugin_commands()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None:
            spec = self.plugin_commands().get(cmd_name)
            if spec is not None:
                command = spec.load()
                self.add_command(command, cmd_name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of ``--help``: a plugin's line is its summary (nothing is
        imported for it)."""
        plugins = self.plugin_commands()
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows: list[tuple[str, str]] = []
        for name in names:
            command = self.commands.get(name) or click.Command(name, help=plugins[name].summary)
            if not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)
