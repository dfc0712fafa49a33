"""``swarmstream submit``: post one task, or many from JSON lines, optionally wait
for their findings."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, BinaryIO

import typer

from swarmstream.cli.base import EXIT_USAGE, fail, globals_of
from swarmstream.cli.common import connected, emit_json, parse_json, positive, read_text, run
from swarmstream.errors import ConfigError, WaitTimeout
from swarmstream.keys import validate_name
from swarmstream.models import DEFAULT_MAX_ATTEMPTS, Finding, Task
from swarmstream.settings import Settings

if TYPE_CHECKING:
    from swarmstream.cli.tasklines import Flags, TaskLine

#: Exit codes of ``submit --wait``: ok, failed/dead, no finding in time.
EXIT_OK, EXIT_FAILED, EXIT_TIMEOUT = 0, 1, 2
#: tasks per pipelined round trip of ``submit --file``
BATCH = 500
#: bad lines named one by one on stderr before the summary
SHOW_BAD = 20


def submit(
    ctx: typer.Context,
    spec: Annotated[str, typer.Argument(help="Specialization whose workers run the task.")],
    text: Annotated[
        str | None,
        typer.Argument(
            help="The task's instruction; '-' reads it from stdin. Leave it out with --file.",
            show_default=False,
        ),
    ] = None,
    file: Annotated[
        str | None,
        typer.Option(
            "--file",
            metavar="PATH",
            help="Post many tasks: one JSON object per line ('-': stdin) with \"text\" and "
            'optionally "data", "shard", "id", "max_attempts", "timeout", "spec". Every line '
            "is checked first: a bad one posts nothing (exit 2) unless --skip-bad.",
            show_default=False,
        ),
    ] = None,
    skip_bad: Annotated[
        bool,
        typer.Option(
            "--skip-bad", help="With --file: post the good lines, name the bad ones on stderr."
        ),
    ] = False,
    shard: Annotated[
        str | None, typer.Option("--shard", metavar="ID", help="Shard the task belongs to.")
    ] = None,
    data: Annotated[
        str | None,
        typer.Option("--data", metavar="JSON", help="Structured payload for the handler."),
    ] = None,
    max_attempts: Annotated[
        int | None,
        typer.Option(
            "--max-attempts",
            metavar="N",
            help="Deliveries before dead-lettering. \\[default: max_attempts of the spec's "
            f"\\[specs.SPEC] in --config, else {DEFAULT_MAX_ATTEMPTS}]",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            metavar="SECONDS",
            help="Handler time limit per attempt. \\[default: timeout of \\[specs.SPEC], "
            "else none]",
            show_default=False,
        ),
    ] = None,
    wait: Annotated[
        float | None,
        typer.Option(
            "--wait",
            metavar="SECONDS",
            help="Wait this long for the finding(s) and print them instead of the task ids. "
            "Exit 0 if all ok, 1 if any failed or was dead-lettered, 2 if some did not come "
            "in time.",
        ),
    ] = None,
    batch: Annotated[
        int,
        typer.Option("--batch", metavar="N", min=1, help="With --file: tasks per round trip."),
    ] = BATCH,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (one object per line with --file).")
    ] = False,
) -> None:
    """Post a task to SPEC's stream and print its id (with --wait: its finding);
    with --file, post many, one JSON object per line.

    Flags, then the spec's \\[specs.SPEC] table of the --config file, give what a
    task (or a line) leaves out. With --file, --json prints one line per task posted
    (task_id, spec, shard, line), and with --wait one finding per line (plus "line").

    Example: swarmstream submit research "where do shipments stall?" --wait 120 --json

    Many at once: swarmstream submit research --file tasks.jsonl --wait 600 --json
    """
    _check_flags(spec, shard, max_attempts, timeout, wait)
    payload = parse_json(data, "--data") if data is not None else None
    if (file is None) == (text is None):
        raise ConfigError("give TEXT or --file, not both" if file else "give TEXT or --file")
    if skip_bad and file is None:
        raise ConfigError("--skip-bad goes with --file")
    settings = globals_of(ctx).settings()
    if file is not None:
        from swarmstream.cli.tasklines import Flags

        flags = Flags(spec, shard, payload, max_attempts, timeout)
        _submit_file(settings, file, flags, skip_bad, batch, wait, as_json)
        return
    assert text is not None
    defaults = settings.spec(spec)
    task = Task(
        spec,
        read_text(text),
        data=payload,
        shard=shard,
        max_attempts=max_attempts or defaults.max_attempts or DEFAULT_MAX_ATTEMPTS,
        timeout=timeout if timeout is not None else defaults.timeout,
    )
    _submit_one(settings, task, wait, as_json)


def _check_flags(
    spec: str,
    shard: str | None,
    max_attempts: int | None,
    timeout: float | None,
    wait: float | None,
) -> None:
    validate_name("spec", spec)
    if shard is not None:
        validate_name("shard", shard)
    if max_attempts is not None and not 1 <= max_attempts <= 1000:
        raise ConfigError(f"--max-attempts must be between 1 and 1000, got {max_attempts}")
    positive(timeout, "--timeout")
    if wait is not None and not 0 <= wait < float("inf"):
        raise ConfigError(f"--wait must be zero or more seconds, got {wait:g}")


def _submit_one(settings: Settings, task: Task, wait: float | None, as_json: bool) -> None:
    """Post one task; print its id, or with ``wait`` its finding (and exit by it)."""

    async def main() -> Finding | None:
        async with connected(settings) as swarm:
            posted = await swarm.submit(
                task.spec,
                task.text,
                data=task.data,
                shard=task.shard,
                max_attempts=task.max_attempts,
                timeout=task.timeout,
                task_id=task.id,
            )
            if wait is None:
                return None
            try:
                return await swarm.wait(posted, timeout=wait)
            except WaitTimeout:
                return None

    finding = run(main())
    if wait is None:
        if as_json:
            emit_json({"task_id": task.id, "spec": task.spec, "shard": task.shard})
        else:
            typer.echo(task.id)
        return
    if finding is None:
        fail(
            f"no finding for task {task.id} within {wait:g}s; it stays queued "
            f"(later: swarmstream findings {task.spec} --task {task.id})",
            EXIT_TIMEOUT,
        )
    if as_json:
        from swarmstream.codec import finding_to_json

        emit_json(finding_to_json(finding))
    else:
        _print_detail(finding)
    raise typer.Exit(EXIT_OK if finding.ok else EXIT_FAILED)


def _print_detail(finding: Finding) -> None:
    from rich.console import Console

    from swarmstream.cli.render import finding_detail

    Console(highlight=False).print(finding_detail(finding))


# -- many tasks: --file ---------------------------------------------------------------


def _submit_file(
    settings: Settings,
    file: str,
    flags: Flags,
    skip_bad: bool,
    batch: int,
    wait: float | None,
    as_json: bool,
) -> None:
    """Check every line, post the tasks in batches, then wait if asked."""
    source = "stdin" if file == "-" else file
    lines, skipped = _checked_lines(file, source, flags, settings, skip_bad)

    async def main() -> dict[str, Finding]:
        async with connected(settings) as swarm:
            for start in range(0, len(lines), batch):
                chunk = lines[start : start + batch]
                try:
                    await swarm.submit_many([t.task for t in chunk])
                except BaseException:
                    _stopped_at(source, lines, start)
                    raise
                if wait is None and as_json:
                    _emit_posted(chunk)
            if wait is None:
                return {}
            return await swarm.wait_many([t.task for t in lines], timeout=wait)

    found = run(main())
    if wait is None:
        if not as_json:
            typer.echo(_posted_summary(lines, skipped, source))
        return
    _report_findings(lines, found, wait, as_json)


def _checked_lines(
    file: str, source: str, flags: Flags, settings: Settings, skip_bad: bool
) -> tuple[list[TaskLine], int]:
    """The tasks of every good line, and how many bad lines were skipped. The bad
    ones are named on stderr; unless ``skip_bad``, any exits 2 before posting."""
    from swarmstream.cli.tasklines import read_lines

    with _opened(file) as stream:
        lines, bad = read_lines(stream, flags, settings)
    for b in bad[:SHOW_BAD]:
        typer.echo(f"{source}:{b.number}: {b.reason}", err=True)
    if len(bad) > SHOW_BAD:
        typer.echo(f"{source}: ... and {len(bad) - SHOW_BAD} more bad lines", err=True)
    if bad and not skip_bad:
        fail(
            f"{len(bad)} bad line(s) in {source} (the first: line {bad[0].number}); nothing "
            "posted (--skip-bad posts the good ones)",
            EXIT_USAGE,
        )
    if not lines:
        fail(f"no tasks in {source}", EXIT_USAGE)
    return lines, len(bad)


def _stopped_at(source: str, lines: list[TaskLine], start: int) -> None:
    """Say on stderr how far posting got when a batch failed (before its error)."""
    first = lines[start].number
    done = f"the tasks of lines 1-{lines[start - 1].number} were posted; " if start else ""
    typer.echo(
        f"{source}: {done}the batch from line {first} failed (some of it may be posted), "
        "none after it was",
        err=True,
    )


@contextlib.contextmanager
def _opened(file: str) -> Iterator[BinaryIO]:
    """``file`` opened for its lines (bytes), or stdin for ``-``."""
    if file == "-":
        yield sys.stdin.buffer
        return
    try:
        with Path(file).open("rb") as stream:
            yield stream
    except FileNotFoundError:
        raise ConfigError(f"--file not found: {file}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read --file {file}: {exc.strerror}") from None


def _emit_posted(chunk: list[TaskLine]) -> None:
    for t in chunk:
        task = t.task
        emit_json({"task_id": task.id, "spec": task.spec, "shard": task.shard, "line": t.number})


def _posted_summary(lines: list[TaskLine], skipped: int, source: str) -> str:
    per_spec: dict[str, int] = {}
    for t in lines:
        per_spec[t.task.spec] = per_spec.get(t.task.spec, 0) + 1
    specs = ", ".join(f"{s}: {n:,}" for s, n in per_spec.items())
    skip = f", {skipped:,} bad lines skipped" if skipped else ""
    return f"posted {len(lines):,} tasks from {source} ({specs}){skip}"


def _report_findings(
    lines: list[TaskLine], found: dict[str, Finding], wait: float, as_json: bool
) -> None:
    """Print the findings in line order; exit 0 all ok, 1 some failed or dead, 2 some
    did not come in time (2 wins: the run is not over)."""
    missing = [t for t in lines if t.task.id not in found]
    not_ok = [t for t in lines if t.task.id in found and not found[t.task.id].ok]
    if as_json:
        from swarmstream.codec import finding_to_json

        for t in lines:
            if t.task.id in found:
                emit_json({**finding_to_json(found[t.task.id]), "line": t.number})
    else:
        ok = len(found) - len(not_ok)
        typer.echo(
            f"{len(lines):,} tasks: {ok:,} ok, {len(not_ok):,} failed or dead, "
            f"{len(missing):,} without a finding after {wait:g}s"
        )
        for t in not_ok[:SHOW_BAD]:
            f = found[t.task.id]
            typer.echo(f"line {t.number}: task {f.task_id} {f.status.value}: {f.error or ''}")
    if missing:
        ids = ", ".join(t.task.id for t in missing[:5]) + (", ..." if len(missing) > 5 else "")
        fail(
            f"no finding within {wait:g}s for {len(missing):,} of {len(lines):,} tasks ({ids}); "
            "they stay queued (later: swarmstream findings SPEC --task ID)",
            EXIT_TIMEOUT,
        )
    raise typer.Exit(EXIT_FAILED if not_ok else EXIT_OK)
