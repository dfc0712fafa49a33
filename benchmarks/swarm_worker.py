"""One process of `swarm.py`'s swarm: many real EphemeralWorkers in one event loop.

Each worker has its own consumer name, its own Transport (connections), leases,
heartbeats, reclaim and upkeep loops, and runs a handler that sleeps ``--sleep``
seconds (an LLM call stand-in). Control lines on stdin:

- ``spare``: give every worker ``--spare`` more slots than the tasks it holds (a
  worker only reads and reclaims while it has a free slot);
- ``quit``: stop (the driver normally kills the process with SIGKILL).

Prints ``ready <n>`` once every worker has started (registered its heartbeat).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from swarmstream.models import Task, WorkerState
from swarmstream.settings import Settings
from swarmstream.worker import EphemeralWorker


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--settings", required=True, help="flat settings, JSON")
    p.add_argument("--spec", required=True)
    p.add_argument("--names", required=True, help="prefix:first:count")
    p.add_argument("--spare", type=int, default=1)
    p.add_argument("--sleep", type=float, default=3600.0)
    return p.parse_args(argv)


async def amain(args: argparse.Namespace) -> None:
    settings = Settings.from_flat(json.loads(args.settings))
    prefix, first, count = args.names.rsplit(":", 2)
    seconds = args.sleep

    async def llm_call(task: Task) -> dict[str, Any]:
        await asyncio.sleep(seconds)
        return {"slept": seconds}

    workers = [
        EphemeralWorker(args.spec, llm_call, settings, name=f"{prefix}{i:05d}")
        for i in range(int(first), int(first) + int(count))
    ]
    runs = [asyncio.create_task(w.run()) for w in workers]
    while any(w.state is WorkerState.STARTING for w in workers):
        if any(r.done() for r in runs):
            for r in runs:
                if r.done():
                    r.result()  # raises a start-up error
        await asyncio.sleep(0.05)
    print(f"ready {len(workers)}", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        if line == "spare":
            for w in workers:
                # Benchmark-only: each worker was filled to exactly its concurrency;
                # now give it free slots, so it reads and reclaims like a swarm
                # with spare capacity.
                w.cfg = dataclasses.replace(w.cfg, concurrency=w.cfg.concurrency + args.spare)
                w._slot_free.set()
            print("spared", flush=True)
        elif line == "quit":
            break
    for w in workers:
        w.stop(force=True)
    await asyncio.gather(*runs, return_exceptions=True)


def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(amain(parse_args()))


if __name__ == "__main__":
    main()
