"""Two more configurations for ``roundtrip_pairs.py --parts``: they tell apart the
parts of swarmstream's round trip that cost.

* ``raw streams, asyncio``: the raw streams request/reply of ``latency.py`` (XADD,
  then XREAD BLOCK from the last reply's id; the responder XREADGROUP, then XADD +
  XACK in one write), with asyncio and swarmstream's direct command path
  (``swarmstream.transport.direct``) on both sides instead of sync redis-py. Against
  ``raw streams``, it prices asyncio and the direct path.
* ``swarmstream, library loop``: swarmstream's requester (``submit`` then ``wait``)
  and a consumer process that runs the library's own steps in a plain loop:
  ``Streams.read`` (XREADGROUP), ``codec.decode_task``, ``codec.finding_body`` and
  ``Streams.complete`` (the fenced ``complete.lua``), one entry at a time. Against
  ``swarmstream``, it prices the worker's machinery around those steps (its job
  tasks, ledger, read-ahead, flusher, hooks and background loops). It is not a
  worker: no leases, no retries, no dead letters.

Responders run as ``python benchmarks/roundtrip_parts.py asyncio_raw|library_loop ...``
(``Harness.popen`` starts them, each in its own session, like the others).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import redis
from redis.asyncio import Redis

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent.parent))
from benchmarks.latency import (  # noqa: E402
    BLOCK_MS,
    GROUP,
    SPEC,
    TIMEOUT,
    Config,
    Harness,
    SwarmRequester,
    answer,
    answered,
    open_streams,
    request,
    wait_client,
)
from swarmstream import codec  # noqa: E402
from swarmstream.client import Swarm  # noqa: E402
from swarmstream.models import Status  # noqa: E402
from swarmstream.settings import Settings  # noqa: E402
from swarmstream.transport import direct  # noqa: E402
from swarmstream.transport.connection import stream_entries  # noqa: E402
from swarmstream.transport.streams import Completion  # noqa: E402

CONSUMER = "library-loop"


async def asyncio_responder(url: str, req: str, resp: str, name: str) -> None:
    """The raw streams responder of ``latency.py``, on asyncio and the direct path."""
    client = Redis.from_url(url, client_name=name)
    read = ("XREADGROUP", "GROUP", GROUP, name, "COUNT", 100, "BLOCK", BLOCK_MS)
    while True:
        reply = await direct.call(client, *read, "STREAMS", req, ">", block_ms=BLOCK_MS)
        entries = list(stream_entries(reply))
        if not entries:
            continue
        commands: list[tuple[Any, ...]] = [
            ("XADD", resp, "*", "body", answer(fields[b"body"])) for _key, _id, fields in entries
        ]
        commands.append(("XACK", req, GROUP, *[e[1] for e in entries]))
        await direct.pipeline(client, commands)


class AsyncioRequester:
    """The raw streams requester of ``latency.py``, on asyncio and the direct path."""

    def __init__(self, url: str, req: str, resp: str) -> None:
        admin: Any = redis.Redis.from_url(url)
        self.cursor = open_streams(admin, req, resp)
        admin.close()
        self.loop = asyncio.new_event_loop()
        self.client = Redis.from_url(url)
        self.req, self.resp, self.seq = req, resp, 0

    def latency(self) -> float:
        return self.loop.run_until_complete(self._one())

    async def _one(self) -> float:
        t0 = time.perf_counter()
        self.seq += 1
        rid, body = request("asyncio", self.seq)
        await direct.call(self.client, "XADD", self.req, "*", "body", body)
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            read = ("XREAD", "COUNT", 1000, "BLOCK", BLOCK_MS, "STREAMS", self.resp)
            reply = await direct.call(self.client, *read, self.cursor, block_ms=BLOCK_MS)
            found = False
            for _key, entry_id, fields in stream_entries(reply):
                self.cursor = entry_id
                found = found or answered(fields[b"body"]) == rid
            if found:
                return time.perf_counter() - t0
        raise RuntimeError("raw streams, asyncio: no reply")

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


async def library_loop(url: str, namespace: str) -> None:
    """Read, decode, answer (echo) and complete, one entry at a time."""
    settings = Settings.from_flat({"url": url, "namespace": namespace})
    async with Swarm(settings) as swarm:
        streams = swarm.streams
        await streams.ensure_group(SPEC)
        limit = settings.worker.max_entry_bytes
        while True:
            for entry in await streams.read([SPEC], CONSUMER, 8, BLOCK_MS):
                started = time.time()
                task, wire = codec.decode_task(entry.spec, entry.fields, limit, entry.deliveries)
                body = codec.finding_body(
                    task,
                    status=Status.OK.value,
                    content=task.text,
                    worker=CONSUMER,
                    started=started,
                    finished=time.time(),
                    wire=wire,
                )
                ok = Status.OK.value
                done = Completion(entry.entry_id, task.id, task.shard or "", ok, body, False)
                await streams.complete(SPEC, CONSUMER, [done])


def add_asyncio_raw(h: Harness) -> None:
    ns = h.ns("asyncio")
    req, resp = f"{ns}:req", f"{ns}:resp"
    r = AsyncioRequester(h.url, req, resp)
    name = f"asyncio-responder-{ns}"
    argv = [sys.executable, str(HERE), "asyncio_raw", h.url, req, resp, name]
    proc = h.popen(argv, h.tmp / f"{ns}.log")
    wait_client(h.admin, name, "xreadgroup", proc)
    h.configs.append(
        Config(
            "raw_asyncio", "raw streams, asyncio", 0, 0, r.latency, _no_burst, r.close, pid=proc.pid
        )
    )


def add_library_loop(h: Harness) -> None:
    ns = h.ns("loop")
    argv = [sys.executable, str(HERE), "library_loop", h.url, ns]
    proc = h.popen(argv, h.tmp / f"{ns}.log")
    r = SwarmRequester(Settings.from_flat({"url": h.url, "namespace": ns}))
    try:
        r.latency()  # the loop answers (its group is made by whichever side comes first)
    except Exception:
        code = proc.poll()
        raise RuntimeError(f"the library loop did not answer (exit code {code})") from None
    h.configs.append(
        Config(
            "library_loop",
            "swarmstream, library loop",
            0,
            0,
            r.latency,
            _no_burst,
            r.close,
            pid=proc.pid,
        )
    )


def _no_burst(n: int) -> float:
    raise NotImplementedError("roundtrip_pairs runs sequential requests only")


def main(argv: list[str]) -> None:
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if argv[:1] == ["asyncio_raw"] and len(argv) == 5:
        asyncio.run(asyncio_responder(*argv[1:]))
    elif argv[:1] == ["library_loop"] and len(argv) == 3:
        asyncio.run(library_loop(*argv[1:]))
    else:
        raise SystemExit(
            "usage: roundtrip_parts.py asyncio_raw URL REQ RESP NAME | library_loop URL NS"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
