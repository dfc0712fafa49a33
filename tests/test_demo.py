"""`swarmstream demo` end to end, as a new user runs it (its own Redis, real processes)."""

from __future__ import annotations

import re
import subprocess
import sys


def test_demo_runs_recovers_a_killed_worker_and_cleans_up() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "swarmstream", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "200", "PATH": ""},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout
    assert "killed worker-" in text and "with SIGKILL while it ran task" in text
    assert re.search(r"\[ops/harbor\.md:\d+-\d+\]", text), "a path:line citation"
    assert "Answered by 3 of 3 shards" in text
    m = re.search(r"summary: (\d+) tasks, (\d+) findings, (\d+) recovered", text)
    assert m, text[-1500:]
    tasks, findings, recovered = map(int, m.groups())
    assert tasks == findings == 21
    assert recovered >= 1
    home = re.search(r"\(in (/\S+)\)", text)
    assert home is not None
    import os

    assert not os.path.exists(home.group(1)), "the demo removed its folder"
