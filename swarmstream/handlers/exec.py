"""The external-command handler: any program (``claude -p``, ``gemini``, ``llm``, a
script) becomes a worker.

The command runs as an argv list, never through a shell, in its own process group.
The task's text goes on its stdin; what it prints on stdout is the finding. A JSON
object with ``content``, ``sources`` or ``usage`` (and optionally ``data``) on stdout
is a structured finding. The JSON printed by ``claude -p --output-format json`` (or
``stream-json``), ``gemini --output-format json`` (or ``stream-json``) and ``codex exec
--json`` is recognized too: the agent's answer is the content and its usage (model,
tokens, cost, session, turns) goes into ``Result.usage`` in the canonical shape of
``swarmstream.usage.Usage.to_dict()``.

A non-zero exit fails the attempt, with the tail of stderr as the error; so does an
error the agent reports in its JSON (Claude's ``is_error``, Gemini's ``error``,
Codex's ``turn.failed``). When the task times out (or the worker stops), the whole
process group is terminated, then killed, and the command's pid is reaped. A failed
attempt ``spend()``s the usage the agent reported (on a timeout: in the complete
lines printed so far), for the caller's ``swarmstream.usage.metering()``.

The environment is the worker's plus ``SWARMSTREAM_TASK_ID``, ``SWARMSTREAM_SPEC``,
``SWARMSTREAM_SHARD``, ``SWARMSTREAM_ATTEMPT``, ``SWARMSTREAM_PASS`` and
``SWARMSTREAM_CONTEXT_FILE``: the path of the parent shard's borrowed context, written
once per context version into a private temporary folder, and
``SWARMSTREAM_CONTEXT_VERSION``, that version (both unset without a shard).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import os
import re
import shlex
import shutil
import signal
import tempfile
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from swarmstream.errors import ConfigError, HandlerError, HandlerNotFound
from swarmstream.handlers.base import ContextLike, to_result
from swarmstream.models import Result, Task
from swarmstream.usage import AgentOutput, parse_agent_output, spend, usage_so_far

log = logging.getLogger(__name__)

#: Most stdout kept per run; past it the command is killed and the attempt fails.
DEFAULT_MAX_OUTPUT = 10 * 1024 * 1024
#: Characters of stderr kept in the error of a failed attempt.
STDERR_TAIL = 2000
_STDERR_KEEP = 64 * 1024  # bytes of stderr buffered (its tail), enough for STDERR_TAIL chars
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to a process group; False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member we may not signal (setuid): it still exists
        return True
    return True


def _write_atomic(directory: str, name: str, data: bytes) -> str:
    """Write ``data`` to ``directory/name`` through a temporary file and a rename, so a
    reader never sees a partial file."""
    path = os.path.join(directory, name)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def _file_stem(shard: str) -> str:
    """A file name for a shard: its name when safe (shard names are), else a hash."""
    if _SAFE_NAME.fullmatch(shard):
        return shard
    return hashlib.sha256(shard.encode("utf-8", "replace")).hexdigest()[:24]


def _inherited_env() -> dict[str, str]:
    """The worker's environment minus its Redis settings (URLs may hold passwords) and
    any task variable it was itself started with (each task sets its own)."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SWARMSTREAM_REDIS") and k not in _TASK_VARIABLES
    }


#: the variables a task sets for its command (``SWARMSTREAM_CONTEXT_FILE`` only
#: when the task has a shard context)
_TASK_VARIABLES = frozenset(
    {
        "SWARMSTREAM_TASK_ID",
        "SWARMSTREAM_SPEC",
        "SWARMSTREAM_SHARD",
        "SWARMSTREAM_ATTEMPT",
        "SWARMSTREAM_PASS",
        "SWARMSTREAM_CONTEXT_FILE",
        "SWARMSTREAM_CONTEXT_VERSION",
    }
)


def parse_output(text: str) -> Result:
    """A finding from a command's stdout.

    The output of an agent CLI (see ``swarmstream.usage.parse_agent_output``) gives
    its answer as the content and its usage, normalized, as ``Result.usage``; an error
    it reports fails the attempt (HandlerError), its usage spent first. A JSON object
    with ``content``, ``sources`` or ``usage`` is a structured finding (a ``result``
    string stands in for a missing ``content``); its usage is normalized when
    recognized, else kept as printed. Anything else: the whole text is the content.
    """
    out = parse_agent_output(text)
    if out is None:
        return Result(content=text)
    if out.is_error:
        spend(out.usage)
        raise HandlerError(f"{out.agent} reported an error: {out.error}")
    if out.fields is not None:
        return _structured(out, out.fields)
    usage = out.usage.to_dict() if out.usage is not None else None
    return Result(content=out.content or "", usage=usage, data=out.data)


def _structured(out: AgentOutput, fields: Mapping[str, Any]) -> Result:
    """Our own object, checked like a handler's dict; usage in the canonical shape."""
    sources = fields.get("sources")
    if sources is not None and not isinstance(sources, list):
        raise HandlerError("'sources' must be a list of strings")
    printed = fields.get("usage")
    if printed is not None and not isinstance(printed, dict):
        raise HandlerError("'usage' must be an object")
    if out.usage is None:  # nothing recognized: the usage object as printed
        return to_result(dict(fields))
    return to_result({**fields, "usage": out.usage.to_dict()})


def _agent_error(stdout: str) -> str | None:
    """The error an agent reported in a failed command's stdout, after spending the
    usage it reported there."""
    out = parse_agent_output(stdout)
    if out is None:
        return None
    spend(out.usage)
    return out.error[:500] if out.is_error and out.error else None


class _Collector(asyncio.SubprocessProtocol):
    """Collects a command's stdout (capped) and the tail of its stderr, and reports
    when the command exits and when all its pipes are closed."""

    def __init__(self, max_output: int) -> None:
        loop = asyncio.get_running_loop()
        self.max_output = max_output
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.exited: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.overflow: asyncio.Future[None] = loop.create_future()

    def pipe_data_received(self, fd: int, data: bytes | bytearray) -> None:
        if fd == 1:
            if self.overflow.done():
                return
            if len(self.stdout) + len(data) > self.max_output:
                self.overflow.set_result(None)
                return
            self.stdout += data
        elif fd == 2:
            self.stderr += data
            if len(self.stderr) > 2 * _STDERR_KEEP:
                del self.stderr[:-_STDERR_KEEP]

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        # called once the process has exited and every pipe is closed
        if not self.closed.done():
            self.closed.set_result(None)

    def stderr_tail(self) -> str:
        text = bytes(self.stderr[-_STDERR_KEEP:]).decode("utf-8", "replace").strip()
        return text[-STDERR_TAIL:] if text else "(no stderr)"


@dataclass(eq=False)
class _ContextFile:
    """One context version written to a file, and the tasks currently using it."""

    path: str
    ready: asyncio.Future[str]
    users: int = 0


class ExecHandler:
    """Runs an external command per task (argv list, no shell, own process group).

    ``ExecHandler.from_command("claude -p --model x")`` splits a command line like a
    POSIX shell would, but no shell ever runs it: the task's text reaches the command
    only on stdin, so nothing in it is interpreted.
    """

    needs_context = True

    def __init__(
        self,
        argv: Sequence[str],
        name: str | None = None,
        *,
        env: Mapping[str, str] | None = None,
        max_output: int = DEFAULT_MAX_OUTPUT,
        kill_grace: float = 2.0,
        max_context_files: int = 16,
    ) -> None:
        if isinstance(argv, str):
            raise ConfigError("ExecHandler takes an argv list; use ExecHandler.from_command")
        self.argv = [str(a) for a in argv]
        if not self.argv or not self.argv[0].strip():
            raise ConfigError('empty command: give a program and its arguments, e.g. "claude -p"')
        if shutil.which(self.argv[0]) is None:
            raise HandlerNotFound(
                f"command not found or not executable: {self.argv[0]!r} (not on PATH?)"
            )
        if max_output < 1 or kill_grace < 0 or max_context_files < 1:
            raise ConfigError("max_output and max_context_files must be positive, kill_grace >= 0")
        self.name: str = name or f"exec:{os.path.basename(self.argv[0])}"
        self.env = dict(env or {})
        self.max_output = max_output
        self.kill_grace = kill_grace
        self.max_context_files = max_context_files
        self._dir: str | None = None
        self._files: OrderedDict[tuple[str, str], _ContextFile] = OrderedDict()
        self._groups: set[int] = set()  # process groups of running commands
        self.context_writes = 0  # how many context files were written (for tests, stats)

    @classmethod
    def from_command(cls, command: str, name: str | None = None, **options: Any) -> ExecHandler:
        """Build from one command line, split with ``shlex`` (no shell involved)."""
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise ConfigError(f"cannot parse command {command!r}: {exc}") from None
        if not argv:
            raise ConfigError(
                f'empty command {command!r}: give a program and its arguments, e.g. "claude -p"'
            )
        return cls(argv, name, **options)

    def __repr__(self) -> str:
        return f"ExecHandler({shlex.join(self.argv)!r})"

    # -- running a task ----------------------------------------------------

    async def __call__(self, task: Task, context: ContextLike | None) -> Result:
        held = await self._acquire_context(task, context) if context is not None else None
        try:
            env = {
                **_inherited_env(),
                **self.env,
                "SWARMSTREAM_TASK_ID": task.id,
                "SWARMSTREAM_SPEC": task.spec,
                "SWARMSTREAM_SHARD": task.shard or "",
                "SWARMSTREAM_ATTEMPT": str(task.attempt),
                "SWARMSTREAM_PASS": str(task.pass_no),
            }
            if held is not None:  # unset without a shard: "" would name the cwd
                env["SWARMSTREAM_CONTEXT_FILE"] = held.path
                version = getattr(context, "version", None)
                if isinstance(version, int):  # what citations are checked against
                    env["SWARMSTREAM_CONTEXT_VERSION"] = str(version)
            out = await self._run(task.text.encode("utf-8"), env)
        finally:
            if held is not None:
                held.users -= 1
                self._evict()
        return parse_output(out)

    async def _run(self, stdin: bytes, env: dict[str, str]) -> str:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.subprocess_exec(
            lambda: _Collector(self.max_output),
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,  # its own process group: killed as a whole
        )
        pgid = transport.get_pid()  # the session leader's pid is the group id
        self._groups.add(pgid)
        try:
            pipe = transport.get_pipe_transport(0)
            if isinstance(pipe, asyncio.WriteTransport):
                pipe.write(stdin)  # buffered by the loop; written as the command reads
                pipe.close()  # EOF once the buffer is flushed
            await asyncio.wait({proto.exited, proto.overflow}, return_when=asyncio.FIRST_COMPLETED)
            if proto.overflow.done():
                raise HandlerError(
                    f"{self.name}: stdout exceeded {self.max_output} bytes; command killed"
                )
            # Exited. Children it left behind (which may hold stdout open) go too.
            if await self._terminate(pgid, proto):
                log.info("%s: terminated processes the command left running", self.name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(proto.closed), max(1.0, self.kill_grace))
        except BaseException:  # cancelled (timeout, shutdown) or overflow: kill it all
            try:
                await self._terminate(pgid, proto)
            finally:
                # what the agent reported spending before it was cut short
                with contextlib.suppress(Exception):
                    spend(usage_so_far(bytes(proto.stdout).decode("utf-8", "replace")))
            raise
        finally:
            transport.close()
            self._groups.discard(pgid)
        code = transport.get_returncode()
        out = bytes(proto.stdout).decode("utf-8", "replace")
        if code != 0:
            error = _agent_error(out)
            status = f"{self._status(code)}: {error}" if error else self._status(code)
            raise HandlerError(f"{status}; stderr: {proto.stderr_tail()}")
        return out

    def _status(self, code: int | None) -> str:
        if code is not None and code < 0:
            try:
                signame = signal.Signals(-code).name
            except ValueError:
                signame = f"signal {-code}"
            return f"{self.name} was killed by {signame}"
        return f"{self.name} exited with code {code}"

    async def _terminate(self, pgid: int, proto: _Collector) -> bool:
        """SIGTERM the process group, SIGKILL what is left after the grace period, and
        wait until the command itself has exited (and was reaped by the loop).
        Returns False if the group had no process left."""
        existed = False
        try:
            existed = _signal_group(pgid, signal.SIGTERM)
            if existed:
                deadline = time.monotonic() + self.kill_grace
                while time.monotonic() < deadline and _signal_group(pgid, 0):
                    await asyncio.sleep(0.02)
        finally:  # even when cancelled again while waiting
            if existed:
                _signal_group(pgid, signal.SIGKILL)
        try:
            await asyncio.wait_for(asyncio.shield(proto.exited), 5.0)
        except TimeoutError:
            log.warning("%s: process %d did not exit after SIGKILL", self.name, pgid)
        return existed

    # -- the context file --------------------------------------------------

    def _directory(self) -> str:
        if self._dir is None or not os.path.isdir(self._dir):
            self._dir = tempfile.mkdtemp(prefix="swarmstream-exec-")  # mode 0700
            self._files.clear()
        return self._dir

    async def _acquire_context(self, task: Task, context: ContextLike) -> _ContextFile:
        """The file holding this context version, written once and then shared."""
        shard = str(getattr(context, "shard", None) or task.shard or "")
        version = getattr(context, "version", None)
        blob = getattr(context, "blob", None)
        data = blob if isinstance(blob, bytes) else None
        if version is None:  # not a versioned shard context: key it by its content
            data = data if data is not None else context.text.encode("utf-8")
            version = "h" + hashlib.sha256(data).hexdigest()[:16]
        key = (shard, str(version))
        entry = self._files.get(key)
        if entry is not None and entry.ready.done() and not os.path.exists(entry.path):
            del self._files[key]  # removed behind our back (tmp cleaner): write again
            entry = None
        if entry is None:
            if data is None:
                data = context.text.encode("utf-8")
            directory = self._directory()
            name = f"{_file_stem(shard)}-v{key[1]}.txt"
            entry = _ContextFile(
                os.path.join(directory, name),
                asyncio.ensure_future(asyncio.to_thread(_write_atomic, directory, name, data)),
            )
            entry.ready.add_done_callback(functools.partial(self._written, key, entry))
            self._files[key] = entry
            self.context_writes += 1
        self._files.move_to_end(key)
        entry.users += 1
        try:
            await asyncio.shield(entry.ready)  # a cancelled task leaves the write running
        except BaseException:
            entry.users -= 1
            raise
        return entry

    def _written(self, key: tuple[str, str], entry: _ContextFile, fut: asyncio.Future[str]) -> None:
        failed = fut.cancelled() or fut.exception() is not None  # retrieved: logged once
        if failed and self._files.get(key) is entry:
            del self._files[key]
        self._evict()

    def _evict(self) -> None:
        """Remove the oldest unused files beyond ``max_context_files``."""
        excess = len(self._files) - self.max_context_files
        for key, entry in list(self._files.items()):
            if excess <= 0:
                break
            if entry.users == 0 and entry.ready.done():
                del self._files[key]
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                excess -= 1

    # -- shutdown ----------------------------------------------------------

    def close(self) -> None:
        """Kill commands still running and remove the context folder. The worker calls
        this when it stops; the handler can still be used afterwards."""
        for pgid in list(self._groups):
            _signal_group(pgid, signal.SIGKILL)
        self._files.clear()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


__all__ = ["DEFAULT_MAX_OUTPUT", "ExecHandler", "parse_output"]
