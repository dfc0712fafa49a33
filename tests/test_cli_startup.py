"""What a CLI call imports: only what its command needs (functional checks; the
timings are in benchmarks/cli_startup.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import typer
from test_cli import cli

import swarmstream
from swarmstream import Settings
from swarmstream.cli.app import COMMANDS, app

#: what no command needs just to start, parse its arguments or print --help
HEAVY = ("redis", "rich", "mcp", "prometheus_client", "swarmstream.worker", "swarmstream.client")


def loaded_after(code: str) -> list[str]:
    """The HEAVY modules in ``sys.modules`` after running ``code`` in a fresh process."""
    probe = (
        "import json, sys\n"
        "try:\n"
        f"    exec({code!r}, {{'__name__': '__probe__'}})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return loaded


def _main(argv: list[str]) -> str:
    """Code running the ``swarmstream`` entry point with ``argv``."""
    argv = ["swarmstream", *argv]
    return f"import sys\nfrom swarmstream.cli.app import main\nsys.argv = {argv!r}\nmain()"


def test_importing_the_cli_or_the_package_imports_nothing_heavy() -> None:
    assert loaded_after("import swarmstream.cli.app") == []
    assert loaded_after("import swarmstream") == []


def test_help_lists_every_command_without_importing_them() -> None:
    assert loaded_after(_main(["--help"])) == ["rich"]  # Typer draws the help with it
    shown = cli(None, "--help", env={"COLUMNS": "200"})
    assert shown.returncode == 0, shown.stderr
    group = typer.main.get_command(app)
    names = list(getattr(group, "commands", {}))  # builds every command
    assert names == list(COMMANDS)
    rows = [line.strip("│ ").split(" ", 1)[0] for line in shown.stdout.splitlines()]
    assert [r for r in rows if r in COMMANDS] == names


def test_the_help_lines_match_the_commands() -> None:
    """--help shows the table's line; it must be the command's own first paragraph."""
    group = typer.main.get_command(app)
    commands = getattr(group, "commands", {})
    for name, entry in COMMANDS.items():
        real = commands[name].help or ""
        first = " ".join(real.split("\n\n")[0].split())
        assert " ".join(entry.help.split()) == first, name


def test_a_json_command_does_not_import_rich_or_the_worker(settings: Settings) -> None:
    url, ns = settings.redis.url, settings.redis.namespace
    run = _main(["--redis-url", url, "--namespace", ns, "submit", "research", "hi", "--json"])
    loaded = loaded_after(run)
    assert "redis" in loaded and "swarmstream.client" in loaded  # it did connect
    assert not {"rich", "mcp", "prometheus_client", "swarmstream.worker"} & set(loaded)


def test_the_public_names_still_import() -> None:
    from swarmstream import EphemeralWorker, Swarm, Task, run_worker  # noqa: F401

    for name in swarmstream.__all__:
        assert getattr(swarmstream, name) is not None, name
    assert "Swarm" in dir(swarmstream)
    try:
        swarmstream.NoSuchName  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchName" in str(exc)
    else:
        raise AssertionError("an unknown name must raise AttributeError")


def test_every_command_is_guarded() -> None:
    """``guarded`` turns errors into one line and resumes the collector that ``main``
    paused for start-up: a command without it would run with the collector off."""
    from swarmstream.cli.base import guarded

    wrapper_code = guarded(len).__code__  # every guarded wrapper shares this code
    group = typer.main.get_command(app)
    leaves = []

    def walk(cmd: object, path: str) -> None:
        subs = getattr(cmd, "commands", None)
        if subs is None:
            leaves.append((path, cmd))
            return
        for name, sub in subs.items():
            walk(sub, f"{path} {name}".strip())

    walk(group, "")
    assert len(leaves) > len(COMMANDS)
    for path, cmd in leaves:
        callback = getattr(cmd, "callback", None)
        inner = getattr(callback, "__wrapped__", callback)  # Typer's own wrapper, if any
        assert getattr(inner, "__code__", None) is wrapper_code, path


def test_a_command_runs_with_the_collector_on() -> None:
    run = _main(["config"])
    probe = (
        f"import gc\ntry:\n    exec({run!r})\nexcept SystemExit:\n    pass\nprint(gc.isenabled())"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.stdout.strip().endswith("True"), out.stderr
