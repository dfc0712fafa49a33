"""A command group that imports a command's module only when that command runs.

An agent calls the CLI once per action, so every import the action does not need
is paid on every call: the worker, the monitor, MCP and Prometheus for a
``submit``. ``swarmstream --help`` lists every command from the one-line help
kept in the table, without importing any of them; ``swarmstream CMD ...`` imports
the module of CMD only.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import typer
from typer._click import Command, Context  # typer >= 0.26 carries its own click
from typer.core import TyperCommand, TyperGroup

from swarmstream.cli.base import guarded


@dataclass(frozen=True, slots=True)
class Lazy:
    """A command (a function) or a group (a ``typer.Typer``) as ``module:attribute``,
    with the one line ``--help`` shows for it."""

    target: str
    help: str
    group: bool = False

    def load(self, name: str) -> Command:
        """Import the module and build the command (a function is ``guarded``)."""
        module, _, attr = self.target.partition(":")
        obj = getattr(importlib.import_module(module), attr)
        holder = typer.Typer()
        if self.group:
            holder.add_typer(obj, name=name)
        else:
            holder.command(name)(guarded(obj))
        command: Command = typer.main.get_group(holder).commands[name]
        return command


class LazyCommands(MutableMapping[str, Command]):
    """The subcommands by name, in the table's order, each built on first access."""

    def __init__(self, table: Mapping[str, Lazy], built: Mapping[str, Command]) -> None:
        self.table = dict(table)
        self.built: dict[str, Command] = dict(built)

    def __getitem__(self, name: str) -> Command:
        if name not in self.built:
            self.built[name] = self.table[name].load(name)  # KeyError for an unknown name
        return self.built[name]

    def __setitem__(self, name: str, command: Command) -> None:
        self.built[name] = command

    def __delitem__(self, name: str) -> None:
        if name not in self:
            raise KeyError(name)
        self.table.pop(name, None)
        self.built.pop(name, None)

    def names(self) -> list[str]:
        return [*self.table, *(n for n in self.built if n not in self.table)]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __contains__(self, name: object) -> bool:
        return name in self.table or name in self.built


def lazy_group(table: Mapping[str, Lazy]) -> type[TyperGroup]:
    """A ``TyperGroup`` class (``typer.Typer(cls=...)``) whose subcommands are
    ``table``'s, imported when run and listed by ``--help`` without importing."""

    class LazyGroup(TyperGroup):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.commands = LazyCommands(table, self.commands)
            self._listing = False

        def list_commands(self, ctx: Context) -> list[str]:
            return list(self.commands)

        def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
            if cmd_name not in self.commands:
                return None
            if self._listing and cmd_name in table:  # --help: the table's line is enough
                entry = table[cmd_name]
                return TyperCommand(name=cmd_name, help=entry.help)
            return self.commands[cmd_name]

        def format_help(self, ctx: Context, formatter: Any) -> None:
            self._listing = True
            try:
                super().format_help(ctx, formatter)
            finally:
                self._listing = False

    return LazyGroup
