"""A "foreign" producer and worker, written from docs/protocol.md only: plain redis-py
and the Lua files, no import of swarmstream (tests/test_foreign.py runs it next to
swarmstream workers and kills it mid-run).

    python foreign_agent.py produce URL NS SPEC COUNT
    python foreign_agent.py work URL NS SPEC NAME LUA_DIR
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import redis

GROUP = "workers"


def keys(ns: str, spec: str) -> dict[str, str]:
    base = f"{ns}:spec:{{{spec}}}"  # §2: the spec is the hash tag
    return {
        "tasks": f"{base}:tasks",
        "findings": f"{base}:findings",
        "dead": f"{base}:dead",
        "stats": f"{base}:stats",
        "leases": f"{base}:leases",
        "done": f"{base}:done:",
        "err": f"{base}:err:",
        "nil": f"{base}:nil",
    }


def produce(url: str, ns: str, spec: str, count: int) -> None:
    """§3: create the group, register the spec, XADD JSON bodies (no MAXLEN)."""
    r = redis.Redis.from_url(url)
    k = keys(ns, spec)
    try:
        r.xgroup_create(k["tasks"], GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
    r.sadd(f"{ns}:specs", spec)
    pipe = r.pipeline(transaction=False)
    for i in range(count):
        body = {"id": f"foreign-{i:05d}", "text": f"task {i}", "created": time.time()}
        pipe.xadd(k["tasks"], {"body": json.dumps(body)})
    pipe.execute()


class Worker:
    """§6.2 steps 3-6 (read, reclaim, execute, renew), minus retries: the handler
    never fails. Findings are JSON (§4), recorded with complete.lua's flat form."""

    def __init__(self, url: str, ns: str, spec: str, name: str, lua: Path) -> None:
        self.r = redis.Redis.from_url(url)  # bytes in, bytes out (§3)
        self.k = keys(ns, spec)
        self.ns, self.spec, self.name = ns, spec, name
        self.scripts = {
            n: self.r.register_script((lua / f"{n}.lua").read_text())
            for n in ("complete", "renew", "reclaim")
        }
        # §6.1: the swarm's shared settings come from NS:protocol
        record = {a.decode(): b.decode() for a, b in self.r.hgetall(f"{ns}:protocol").items()}
        assert record.get("version", "1.0").split(".")[0] == "1", record
        self.claim_idle_ms = int(record.get("claim_idle_ms", 60000))
        self.done_ttl = int(record.get("done_ttl", 604800))
        self.findings_maxlen = int(record.get("findings_maxlen", 100000))
        self.held: set[str] = set()
        self.lock = threading.Lock()

    def heartbeat(self) -> None:
        """§6.5, the fields status and monitor need."""
        now = time.time()
        with self.lock:
            current = sorted(self.held)
        fields = {
            "name": self.name,
            "host": "foreign",
            "pid": "0",
            "specs": json.dumps([self.spec]),
            "state": "busy" if current else "idle",
            "current": json.dumps(current),
            "busy_since": f"{now:.3f}" if current else "",
            "done": "0",
            "heartbeat": f"{now:.3f}",
        }
        pipe = self.r.pipeline(transaction=False)
        pipe.hset(f"{self.ns}:worker:{self.name}", mapping=fields)
        pipe.expire(f"{self.ns}:worker:{self.name}", 7)
        pipe.zadd(f"{self.ns}:workers", {self.name: now})
        pipe.execute()

    def renew_forever(self) -> None:
        """§6.2 step 6: renew what we hold every claim_idle/4; heartbeat meanwhile."""
        while True:
            self.heartbeat()
            time.sleep(min(2.0, self.claim_idle_ms / 4000))
            with self.lock:
                ids = list(self.held)
            if ids:
                self.scripts["renew"](
                    keys=[self.k["tasks"], self.k["leases"]], args=[GROUP, self.name, *ids]
                )

    def run(self) -> None:
        threading.Thread(target=self.renew_forever, daemon=True).start()
        cursor = "0-0"
        while True:
            got = self.r.xreadgroup(GROUP, self.name, {self.k["tasks"]: ">"}, count=8, block=200)
            entries = [(eid, f, 1) for _, rows in got or [] for eid, f in rows]
            nxt, flat, _deleted = self.scripts["reclaim"](
                keys=[self.k["tasks"], self.k["leases"]],
                args=[GROUP, self.name, self.claim_idle_ms, cursor, 8],
            )
            cursor = nxt.decode()
            for i in range(0, len(flat), 3):  # §6.3: flat triples id, fields, deliveries
                fields = dict(zip(flat[i + 1][::2], flat[i + 1][1::2], strict=True))
                entries.append((flat[i], fields, int(flat[i + 2])))
            for entry_id, fields, attempt in entries:
                self.execute(entry_id.decode(), fields, attempt)

    def execute(self, entry_id: str, fields: dict[bytes, bytes], attempt: int) -> None:
        with self.lock:
            self.held.add(entry_id)
        task = json.loads(fields[b"body"])
        started = time.time()
        time.sleep(0.002)  # the "handler"
        finished = time.time()
        body = {
            "task_id": task["id"],
            "spec": self.spec,
            "status": "ok",
            "content": task["text"].upper(),
            "shard": None,
            "pass": 0,
            "worker": self.name,
            "sources": [],
            "attempt": attempt,
            "created": task.get("created") or started,
            "started": started,
            "finished": finished,
            "duration_ms": round((finished - started) * 1000, 3),
            "error": None,
        }
        k = self.k
        item_keys = [k["done"] + task["id"], k["err"] + task["id"]]
        item = [entry_id, task["id"], "", "ok", json.dumps(body)]
        self.scripts["complete"](
            keys=[k["tasks"], k["findings"], k["stats"], k["leases"], *item_keys],
            args=[GROUP, self.name, self.done_ttl, self.findings_maxlen, *item],
        )
        with self.lock:
            self.held.discard(entry_id)


if __name__ == "__main__":
    role, url, ns, spec = sys.argv[1:5]
    if role == "produce":
        produce(url, ns, spec, int(sys.argv[5]))
    else:
        Worker(url, ns, spec, sys.argv[5], Path(sys.argv[6])).run()
