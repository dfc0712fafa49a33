from __future__ import annotations

import asyncio

from swarmstream import EphemeralWorker, Settings, Status, Swarm


async def test_submit_run_wait(swarm: Swarm, settings: Settings) -> None:
    task = await swarm.submit("research", "hello")
    worker = EphemeralWorker("research", lambda t: t.text.upper(), settings.with_worker(once=True))
    summary = await asyncio.wait_for(worker.run(), 20)
    finding = await swarm.wait(task, timeout=5)
    assert finding.status is Status.OK
    assert finding.content == "HELLO"
    assert finding.attempt == 1
    assert summary.done == 1
