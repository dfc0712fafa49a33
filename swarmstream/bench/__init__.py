"""``swarmstream bench``: swarmstream against plain redis-py on one Redis server, both
sides measured in the same run (interleaved, medians), in a few seconds.

* enqueue: ``Swarm.submit_many`` in batches of 1000 vs a pipelined XADD of the same bodies;
* consume: one worker process (``echo``, concurrency 128) vs a raw consumer process
  (XREADGROUP COUNT 100; one pipeline per batch: XADD a result per task, XACK). Both
  start first; each run pre-loads a staging stream (its group at 0) and releases it
  with one RENAME over the stream the consumer blocks on: start-up is never timed;
* latency: submit -> finding, one in flight, vs raw streams (XADD; the raw consumer
  answers; XREAD BLOCK on its results): p50 and p99;
* borrow: a cold ``ContextCache.borrow`` of a ~3.2 MB context vs a raw GET of the bytes.

No URL: an embedded redis-server on a free port. A URL: every key lives in a fresh
namespace ``bench-<hex>``, deleted with SCAN + UNLINK at the end; nothing is flushed.
"""

from swarmstream.bench.report import BenchConfig, BenchReport, Figure, render
from swarmstream.bench.run import run_bench

__all__ = ["BenchConfig", "BenchReport", "Figure", "render", "run_bench"]
