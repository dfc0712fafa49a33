"""Capture a text frame of `swarmstream monitor` in the middle of `swarmstream demo`."""

from __future__ import annotations

import asyncio
import io
import sys
from pathlib import Path

from rich.console import Console

from swarmstream.client import Swarm
from swarmstream.demo import Demo, DemoSummary
from swarmstream.models import WorkerState
from swarmstream.monitor.render import render
from swarmstream.monitor.snapshot import Snapshot, collect
from swarmstream.settings import Settings

WIDTH, HEIGHT = 100, 44


def score(snap: Snapshot) -> float:
    busy = sum(1 for w in snap.workers if w.state is WorkerState.BUSY)
    running = sum(1 for h in snap.shards if h.tasks and (h.findings or 0) < h.tasks)
    rate = snap.history[-1] if snap.history else 0.0
    stale = sum(1 for w in snap.workers if snap.time - w.heartbeat > 2.5)
    return (
        busy * 3
        + running * 2
        + min(len(snap.feed), 8)
        + (15 if rate > 0 else 0)
        - 4 * stale
        + min(len(snap.history), 20) / 4
    )


class CapturingDemo(Demo):
    best: tuple[float, Snapshot] | None = None
    settings: Settings | None = None

    async def _story(self, swarm: Swarm, settings: Settings, started: float) -> DemoSummary:
        self.settings = settings
        task = asyncio.create_task(self._watch(swarm))
        try:
            return await super()._story(swarm, settings, started)
        finally:
            task.cancel()

    async def _watch(self, swarm: Swarm) -> None:
        reader = swarm.transport.stats
        snap: Snapshot | None = None
        while True:
            snap = await collect(reader, snap)
            s = score(snap)
            if len(snap.history) >= 3 and (self.best is None or s >= self.best[0]):
                self.best = (s, snap)
            await asyncio.sleep(1.0)  # the monitor's default refresh


async def main(out: Path) -> None:
    demo = CapturingDemo(Console(file=io.StringIO(), width=100))
    await demo.run()
    assert demo.best is not None and demo.settings is not None
    console = Console(record=True, width=WIDTH, file=io.StringIO())
    source = f"{demo.settings.redis.namespace} @ {demo.settings.redis.redacted_url}"
    console.print(render(demo.best[1], width=WIDTH, height=HEIGHT, source=source))
    text = "\n".join(line.rstrip() for line in console.export_text().splitlines()) + "\n"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
