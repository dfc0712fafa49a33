"""FastStream (Redis Streams, consumer group) on the peer benchmark's no-op workload.

Worker: ``faststream run tasks_faststream:app --workers 1`` (one process), one
``StreamSub`` subscriber with a consumer group and its defaults (XREADGROUP BLOCK
100 ms, no COUNT, ack after the handler), ``max_workers=CONCURRENCY`` (see below).

FastStream has no result backend: a handler's return value only goes somewhere when
the message asks for a reply. Throughput: messages are published with
``broker.publish(None, stream=..., pipeline=pipe)`` (FastStream's documented bulk
path, one pipeline per 1000 messages); completion is the consumer group's state
(``XINFO GROUPS``: every entry read and none pending, i.e. every message acked, which
FastStream does after the handler returns). Latency: ``await broker.request(None,
stream=...)``, FastStream's RPC over Redis: it subscribes to a reply channel, XADDs
the message with ``reply_to``, and the subscriber publishes the handler's return
value there.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path
from typing import Any

import harness

#: the subscriber's ``max_workers`` (FastStream's default is 1: one message at a time)
CONCURRENCY = int(os.environ.get("PEER_CONCURRENCY", "10"))
#: messages per pipeline in throughput mode
PIPELINE_BATCH = 1000


class GroupProgress:
    """Messages of one batch that the consumer group has read and acked
    (``entries-read`` minus ``pending`` in ``XINFO GROUPS``, from a baseline)."""

    def __init__(self, client: Any, stream: str, group: str) -> None:
        self.client = client
        self.stream = stream
        self.group = group.encode()
        self.base = 0

    async def state(self) -> dict[str, Any]:
        for info in await self.client.xinfo_groups(self.stream):
            if info["name"] == self.group:
                if info.get("entries-read") is None:
                    raise harness.PeerError("XINFO GROUPS gives no entries-read")
                return dict(info)
        raise harness.PeerError(f"no consumer group {self.group!r} on {self.stream}")

    async def acked(self) -> int:
        """Entries read and acked by the group so far."""
        st = await self.state()
        return int(st["entries-read"]) - int(st["pending"])

    async def start(self, timeout: float = 10.0) -> None:
        """Take the baseline once the group is idle (nothing unread or pending): the
        last warm-up message may still be in flight for a moment."""
        deadline = time.monotonic() + timeout
        while True:
            st = await self.state()
            if not (st["pending"] or st.get("lag")):
                break
            if time.monotonic() > deadline:
                raise harness.PeerError(f"the group is still busy before measuring: {st}")
            await asyncio.sleep(0.005)
        self.base = int(st["entries-read"])

    async def count(self) -> int:
        return await self.acked() - self.base


async def group_exists(client: Any, stream: str, group: str) -> bool:
    """The worker's subscriber has created its consumer group (at ``$``)."""
    try:
        return any(g["name"] == group.encode() for g in await client.xinfo_groups(stream))
    except Exception:  # the stream does not exist yet
        return False


def check_log(path: Path) -> None:
    """FastStream acks a message whose handler raised, so failures show only in the
    worker's log (handler exceptions are logged at ERROR whatever the log level)."""
    text = path.read_text(errors="replace") if path.exists() else ""
    if "Traceback" in text or " ERROR " in text:
        raise harness.PeerError(f"the worker logged an error; see {path}")


async def measure(
    args: argparse.Namespace, proc: Any
) -> tuple[float | None, list[float], dict[str, Any]]:
    """Readiness, warm-up, then the timed part; returns (seconds, samples, extra)."""
    import redis.asyncio as aioredis
    import tasks_faststream as app
    from faststream.redis import RedisBroker

    client = aioredis.Redis.from_url(args.url)
    broker = RedisBroker(args.url)  # the driver's own broker: no subscribers
    await broker.connect()
    try:
        await harness.await_until(
            lambda: group_exists(client, app.STREAM, app.GROUP),
            harness.READY_TIMEOUT,
            "the FastStream subscriber's consumer group",
            proc=proc,
        )

        async def request(i: int = 0) -> None:
            await broker.request(None, stream=app.STREAM, timeout=harness.TASK_TIMEOUT)

        for i in range(1 + args.warmup):  # the first one is the readiness probe
            await request(i)

        if args.mode == "latency":
            return None, await harness.ameasure_latency(request, args.n, proc=proc), {}

        progress = GroupProgress(client, app.STREAM, app.GROUP)
        await progress.start()
        redis = broker._connection  # what FastStream's `Redis` annotation injects
        if redis is None:
            raise harness.PeerError("the driver's broker is not connected")

        enqueued: list[float] = []

        async def enqueue(n: int) -> None:
            t0 = harness.now()
            for start in range(0, n, PIPELINE_BATCH):
                async with redis.pipeline(transaction=False) as pipe:
                    for _ in range(min(PIPELINE_BATCH, n - start)):
                        await broker.publish(None, stream=app.STREAM, pipeline=pipe)
                    await pipe.execute()
            enqueued.append(harness.now() - t0)

        seconds = await harness.ameasure_throughput(enqueue, progress.count, args.n, proc=proc)
        st = await progress.state()
        if st["pending"] or st.get("lag"):
            raise harness.PeerError(f"the group is not drained: {st}")
        return seconds, [], {"enqueue_s": sum(enqueued)}
    finally:
        await broker.stop()
        await client.aclose()


def main(args: argparse.Namespace) -> dict[str, Any]:
    extra = {"PEER_URL": args.url, "PEER_PREFIX": args.prefix}
    extra["PEER_CONCURRENCY"] = str(CONCURRENCY)
    os.environ.update(extra)
    version = harness.package_version("faststream")
    patterns = [f"{args.prefix}:*"]
    harness.delete_keys(args.url, patterns)
    argv = [harness.bin_path("faststream"), "run", "tasks_faststream:app", "--workers", "1"]
    proc = harness.start_worker(argv, args.workdir, harness.worker_env(extra), name="faststream")
    try:
        seconds, samples, more = asyncio.run(measure(args, proc))
        check_log(args.workdir / "faststream.log")
    finally:
        harness.stop_worker(proc)
        harness.delete_keys(args.url, patterns)
    settings = {
        "concurrency": CONCURRENCY,
        "pool": "asyncio (max_workers)",
        "worker_processes": 1,
        "max_workers": CONCURRENCY,
        "subscriber": (
            "StreamSub(group, consumer): XREADGROUP BLOCK 100 ms, no COUNT "
            "(polling_interval, max_records: defaults)"
        ),
        "ack_policy": "REJECT_ON_ERROR (default): XACK after the handler",
        "enqueue": (
            f"broker.publish(stream=..., pipeline=pipe), {PIPELINE_BATCH} per pipeline"
            if args.mode == "throughput"
            else "broker.request(stream=...)"
        ),
        "log_level": "per-message access log off (RedisBroker(log_level=DEBUG))",
    }
    notes = (
        "FastStream's default max_workers=1 handles one message at a time; its docs give "
        "no value for I/O-bound handlers, so this uses 10, the default of saq and arq "
        "(asyncio job queues). No result backend: completion is the consumer group's ack "
        "state (throughput) or FastStream's request/reply over Redis pub/sub (latency)."
    )
    if args.mode == "latency":
        completion = (
            "await broker.request(None, stream=...): SUBSCRIBE to a reply channel, XADD "
            "with reply_to, wait for the subscriber's reply on that channel"
        )
    else:
        completion = (
            "XINFO GROUPS polled every 5 ms until entries-read minus pending has grown by N "
            "(every message read and acked; FastStream acks after the handler returns)"
        )
    return harness.result(
        args,
        peer="faststream",
        label=f"FastStream {version} (Redis Streams, consumer group)",
        version=version,
        settings=settings,
        completion=completion,
        seconds=seconds,
        samples=samples if args.mode == "latency" else None,
        notes=notes,
        **more,
    )


if __name__ == "__main__":
    harness.run_main(main, __doc__ or "")
