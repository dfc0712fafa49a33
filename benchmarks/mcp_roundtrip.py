"""Round trip of one MCP tool call to ``swarmstream mcp`` over stdio, as an agent
session sees it: the SDK's own client (``stdio_client`` + ``ClientSession``) starts
``python -m swarmstream mcp`` and calls a cheap tool ``--calls`` times in a row.

``ping`` touches no Redis (the MCP transport and the SDK's dispatch alone);
``status`` adds one snapshot of the swarm (two pipelined Redis round trips).

Without ``--redis-url`` the script starts its own redis-server (no persistence) on a
free port in a temporary folder and stops it at the end. The session uses a fresh
namespace ``bench-mcp-<hex>`` and writes nothing to it.

    python benchmarks/mcp_roundtrip.py                    # 100 calls of ping
    python benchmarks/mcp_roundtrip.py --tool status --calls 200
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from swarmstream.settings import Settings

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from benchmarks.common import redis_server  # noqa: E402


async def measure(settings: Settings, tool: str, calls: int, warmup: int) -> dict[str, float]:
    """Milliseconds: session start (spawn + initialize) and each of ``calls`` calls."""
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "swarmstream", "mcp"], env=settings.to_env()
    )
    started = time.perf_counter()
    async with (
        stdio_client(params) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        start_ms = (time.perf_counter() - started) * 1000
        for _ in range(warmup):
            await _call(session, tool)
        samples = []
        for _ in range(calls):
            t = time.perf_counter()
            await _call(session, tool)
            samples.append((time.perf_counter() - t) * 1000)
    return {
        "start_ms": start_ms,
        "median_ms": statistics.median(samples),
        "min_ms": min(samples),
        "max_ms": max(samples),
        "p90_ms": statistics.quantiles(samples, n=10)[-1] if len(samples) > 1 else samples[0],
    }


async def _call(session: ClientSession, tool: str) -> None:
    result = await session.call_tool(tool, {})
    if result.is_error:
        raise SystemExit(f"{tool} failed: {result.content}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", help="Redis to use (default: start an embedded one)")
    parser.add_argument("--tool", choices=["ping", "status"], default="ping")
    parser.add_argument("--calls", type=int, default=100, help="calls measured (default 100)")
    parser.add_argument("--warmup", type=int, default=10, help="calls not measured first")
    args = parser.parse_args()
    if args.calls < 1 or args.warmup < 0:
        parser.error("--calls must be at least 1 and --warmup 0 or more")
    with redis_server(args.redis_url, prefix="swarmstream-mcp-bench-") as server:
        namespace = f"bench-mcp-{uuid.uuid4().hex[:8]}"
        settings = Settings.from_flat({"url": server.url, "namespace": namespace})
        r = asyncio.run(measure(settings, args.tool, args.calls, args.warmup))
    where = "embedded" if server.embedded else "given"
    print(f"swarmstream mcp over stdio, tool {args.tool!r}, {args.calls} calls")
    print(f"  redis {server.version} ({where}), Python {sys.version.split()[0]}")
    print(f"  session start (spawn + initialize): {r['start_ms']:.0f} ms")
    print(
        f"  round trip: median {r['median_ms']:.3f} ms, "
        f"min-max {r['min_ms']:.3f}-{r['max_ms']:.3f} ms, p90 {r['p90_ms']:.3f} ms"
    )


if __name__ == "__main__":
    main()
