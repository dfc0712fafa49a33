"""Re-record docs/protocol.md §7 (the redis-cli walk-through): run every `$ ` command
of its console blocks, in order, on a fresh redis-server at port 6390, and write the
outputs (and the entry ids later commands use) back into the doc.

    python docs/record_walkthrough.py      # needs redis-server, redis-cli, port 6390 free

tests/test_walkthrough.py checks that the doc still matches what the commands print.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "protocol.md"
ENTRY_ID = re.compile(r"\b1\d{12}-\d+\b")
DEMO = "def fail(task):\n    raise RuntimeError(f'cannot research {task.text!r}')\n"


def main() -> None:
    text = DOC.read_text("utf-8")
    head, rest = text.split("## 7. redis-cli walk-through", 1)
    section, tail = rest.split("\n## 8.", 1)
    tmp = Path(tempfile.mkdtemp())
    (tmp / "demo.py").write_text(DEMO)
    server = subprocess.Popen(
        ["redis-server", "--port", "6390", "--save", "", "--dir", str(tmp)],
        stdout=subprocess.DEVNULL,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARMSTREAM_")}
    env["PYTHONPATH"] = str(tmp)
    ids: dict[str, str] = {}
    try:
        ping = ["redis-cli", "-p", "6390", "PING"]
        for _ in range(100):  # up to 10 s for the server to listen
            if subprocess.run(ping, capture_output=True, text=True).stdout.strip() == "PONG":
                break
            time.sleep(0.1)

        section = re.sub(
            r"```console\n(.*?)```", lambda m: record(m, ids, env), section, flags=re.S
        )
        parts = re.split(r"(```console\n.*?```)", section, flags=re.S)
        for i in range(0, len(parts), 2):  # the prose between blocks names ids too
            for documented, actual in ids.items():
                parts[i] = parts[i].replace(documented, actual)
        section = "".join(parts)
    finally:
        server.terminate()
        server.wait()
    DOC.write_text(head + "## 7. redis-cli walk-through" + section + "\n## 8." + tail, "utf-8")


def record(block: re.Match[str], ids: dict[str, str], env: dict[str, str]) -> str:
    """Run one console block's commands; the block with their outputs."""
    out: list[str] = []
    for line in block.group(1).splitlines():
        if not line.startswith("$ "):
            if not line.strip():
                out.append("")
            continue
        command = line[2:]
        for documented, actual in ids.items():
            command = command.replace(documented, actual)
        argv = shlex.split(command)
        if argv[0] == "swarmstream":
            argv = [sys.executable, "-m", "swarmstream", *argv[1:]]
        elif argv[0] == "redis-cli":
            argv = ["redis-cli", "--no-raw", *argv[1:]]
        run = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
        got = [x for x in (run.stderr + run.stdout).splitlines() if x.strip()]
        old = _expected(block.group(1), line)
        found = ENTRY_ID.findall("\n".join(got))
        for documented, actual in zip(ENTRY_ID.findall("\n".join(old)), found, strict=False):
            ids.setdefault(documented, actual)
        out += [f"$ {command}", *got]
    return "```console\n" + "\n".join(out).strip("\n") + "\n```"


def _expected(block: str, command_line: str) -> list[str]:
    lines = block.splitlines()
    i = lines.index(command_line) + 1
    out = []
    while i < len(lines) and not lines[i].startswith("$ "):
        if lines[i].strip():
            out.append(lines[i])
        i += 1
    return out


if __name__ == "__main__":
    main()
