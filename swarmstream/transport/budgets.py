"""Budgets in Redis: a spec's (in its slot, next to its usage totals) and the
namespace's, and the tally of what the namespace spent.

A spec's budget is checked against its usage hash, which the Lua steps keep. The
namespace's spending is the sum over every spec, in as many slots as there are
specs: no single atomic step can keep it, so workers tally it. At most one worker
per interval does (the one that wins ``SET NS:budget:tally NX PX``) and writes the
sum into the namespace's budget hash, where every worker reads it with its heartbeat.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from swarmstream.accounting import Budget, BudgetState, Totals
from swarmstream.codec import text as _s
from swarmstream.keys import Keys, SpecKeys
from swarmstream.transport.connection import str_hash
from swarmstream.transport.link import Link

#: the usage hash fields a budget counts
SPENT_FIELDS = ("cost", "input", "output", "cache_read", "cache_write")


#: the budget hash fields that hold a limit
LIMIT_FIELDS = ("usd", "tokens")


def spec_budget_reads(k: SpecKeys) -> list[tuple[Any, ...]]:
    """The two commands that read a spec's spending and budget (one slot): what
    ``spec_budget_state`` decodes. ``complete()`` pipelines them with its batch."""
    return [("HMGET", k.usage, *SPENT_FIELDS), ("HMGET", k.budget, *LIMIT_FIELDS)]


def _values(names: Sequence[str], reply: Any) -> dict[str, str]:
    if isinstance(reply, Exception) or not isinstance(reply, list):
        return {}
    return {n: _s(v) for n, v in zip(names, reply, strict=False) if v is not None}


def _spent(reply: Any) -> Totals:
    return Totals.from_fields(_values(SPENT_FIELDS, reply))


def spec_budget_state(used: Any, limits: Any) -> BudgetState | None:
    """The replies of ``spec_budget_reads`` as a BudgetState (None if Redis refused)."""
    if isinstance(used, Exception) or isinstance(limits, Exception):
        return None
    return BudgetState(Budget.from_fields(_values(LIMIT_FIELDS, limits)), _spent(used))


class BudgetStore:
    """Reads and writes budgets; tallies the namespace's spending."""

    def __init__(self, link: Link, keys: Keys) -> None:
        self.link = link
        self.client: Any = link.client
        self.keys = keys

    def _key(self, spec: str | None) -> str:
        return self.keys.budget if spec is None else self.keys.spec(spec).budget

    async def get(self, spec: str | None) -> Budget:
        """The budget of ``spec`` (None: the namespace's); unlimited when none is set."""
        return Budget.from_fields(str_hash(await self.client.hgetall(self._key(spec))))

    async def set(self, spec: str | None, budget: Budget) -> None:
        """Set (replace) a budget; an unlimited one removes it. Workers see it with
        their next heartbeat: a raised budget resumes a paused spec."""
        key = self._key(spec)
        if budget.unlimited:
            await self.client.hdel(key, *LIMIT_FIELDS)
            return
        fields = budget.to_fields()
        if spec is not None:  # listed with the others, even before its first task
            await self.client.sadd(self.keys.specs, spec)
        async with self.client.pipeline(transaction=False) as pipe:
            if drop := [f for f in LIMIT_FIELDS if f not in fields]:
                pipe.hdel(key, *drop)
            pipe.hset(key, mapping=fields)
            await pipe.execute()

    async def specs(self, specs: Sequence[str]) -> dict[str, BudgetState]:
        """Each spec's budget and what it spent (one pipelined round trip; a spec
        whose reads Redis refused is left out)."""
        if not specs:
            return {}
        async with self.client.pipeline(transaction=False) as pipe:
            for spec in specs:
                for command in spec_budget_reads(self.keys.spec(spec)):
                    pipe.execute_command(*command)
            replies = await pipe.execute(raise_on_error=False)
        out: dict[str, BudgetState] = {}
        for i, spec in enumerate(specs):
            if (state := spec_budget_state(replies[2 * i], replies[2 * i + 1])) is not None:
                out[spec] = state
        return out

    async def spent(self, specs: Sequence[str]) -> Totals:
        """What these specs spent, added up (one pipelined round trip)."""
        total = Totals()
        if not specs:
            return total
        async with self.client.pipeline(transaction=False) as pipe:
            for spec in specs:
                pipe.hmget(self.keys.spec(spec).usage, *SPENT_FIELDS)
            for reply in await pipe.execute(raise_on_error=False):
                total = total + _spent(reply)
        return total

    async def namespace(self) -> BudgetState | None:
        """The namespace's budget against what every spec spent (exact; reads every
        spec's totals): None when it has no budget."""
        budget = await self.get(None)
        if budget.unlimited:
            return None
        specs = sorted(_s(s) for s in await self.client.smembers(self.keys.specs))
        return BudgetState(budget, await self.spent(specs))

    async def namespace_tallied(self, interval: float) -> tuple[BudgetState | None, float]:
        """The namespace's budget against its last tally, and when that tally was
        taken (unix s), for workers: one round trip; the worker that takes the tally
        lock also sums every spec and writes the tally (at most once per
        ``interval`` seconds in the whole swarm)."""
        ms = max(100, int(interval * 1000))
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.budget)
            pipe.set(self.keys.budget_tally, "1", nx=True, px=ms)
            values, won = await pipe.execute(raise_on_error=False)
        fields = str_hash(values)
        budget = Budget.from_fields(fields)
        if budget.unlimited:
            return None, 0.0
        if won is True:
            at = time.time()
            state = await self.namespace()
            if state is None:
                return None, 0.0
            await self.client.hset(
                self.keys.budget,
                mapping={
                    "spent_usd": repr(state.spent.cost_usd),
                    "spent_tokens": str(state.spent.tokens),
                    "tallied": repr(at),
                },
            )
            return state, at
        try:
            spent = Totals(
                input_tokens=int(float(fields.get("spent_tokens") or 0)),
                cost_usd=float(fields.get("spent_usd") or 0.0),
            )
            at = float(fields.get("tallied") or 0.0)
        except ValueError:
            spent, at = Totals(), 0.0
        return BudgetState(budget, spent), at
