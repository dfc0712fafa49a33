"""Every command's --help renders (Rich markup in a help text can break it)."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from swarmstream.cli.app import app

runner = CliRunner()


def _commands() -> list[list[str]]:
    group = typer.main.get_command(app)
    out: list[list[str]] = [[]]

    def walk(cmd: object, path: list[str]) -> None:
        for name, sub in getattr(cmd, "commands", {}).items():
            out.append([*path, name])
            walk(sub, [*path, name])

    walk(group, [])
    return out


@pytest.mark.parametrize("path", _commands(), ids=lambda p: " ".join(p) or "swarmstream")
def test_help_renders(path: list[str]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def _command(path: list[str]) -> object:
    cmd: object = typer.main.get_command(app)
    for name in path:
        cmd = getattr(cmd, "commands", {})[name]
    return cmd


@pytest.mark.parametrize("path", _commands(), ids=lambda p: " ".join(p) or "swarmstream")
def test_help_keeps_its_brackets(path: list[str]) -> None:
    """Rich markup eats an unescaped [word] (a TOML table, an option's default):
    every one in a help text must be escaped as \\[word]."""
    import re

    cmd = _command(path)
    texts = [getattr(cmd, "help", None) or ""]
    texts += [getattr(p, "help", None) or "" for p in getattr(cmd, "params", [])]
    for text in texts:
        eaten = re.findall(r"(?<!\\)\[[A-Za-z/@#][^\]]*\]", text)
        assert not eaten, f"{' '.join(path)}: unescaped {eaten} in {text[:80]!r}"
