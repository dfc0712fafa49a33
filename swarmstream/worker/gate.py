"""The budget gate: which of a worker's specs it may claim tasks from.

A spec is paused while its budget, or the namespace's, is spent: the worker stops
claiming its tasks (new ones and reclaims alike), lets the ones in flight finish,
and leaves the rest queued. Nothing costs a round trip per task: the gate is
refreshed with the heartbeat, and a spec with a budget has its totals read back in
the same round trip as each batch of its findings (exact, up to the tasks in
flight). The namespace's spending is tallied once per interval by one worker of the
swarm; between tallies each worker adds what it spent itself (the gate is one of
its hooks), so a namespace budget can be overshot by what the other workers spend
in one heartbeat interval, plus the tasks in flight. Raising the budget resumes it.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence

from swarmstream.accounting import BudgetState, Totals
from swarmstream.transport.budgets import BudgetStore
from swarmstream.transport.streams import Streams
from swarmstream.worker.hooks import OutcomeEvent, WorkerHooks

log = logging.getLogger(__name__)


class BudgetGate(WorkerHooks):
    """Budget state of one worker's specs, as last read, plus what the worker spent
    since (it hears every outcome as a hook)."""

    def __init__(
        self, streams: Streams, budgets: BudgetStore, specs: Sequence[str], interval: float
    ) -> None:
        self.streams = streams
        self.budgets = budgets
        self.specs = list(specs)
        self.interval = interval
        self.namespace: BudgetState | None = None
        self.limited: set[str] = set()  # specs with a budget: complete() reads it back
        self._paused: dict[str, str] = {}  # spec -> why (what was last logged)
        #: what this worker spent that the namespace's last tally may not hold yet
        self._recent: deque[tuple[float, Totals]] = deque()
        self._local = Totals()

    def outcome(self, event: OutcomeEvent) -> None:
        u = event.usage
        if u is not None and self.namespace is not None:
            spent = Totals(input_tokens=u.tokens, cost_usd=u.cost_usd or 0.0, attempts=1)
            self._recent.append((time.time(), spent))
            self._local = self._local + spent

    def why(self, spec: str) -> str | None:
        """Why ``spec`` is paused, or None while it may be claimed from."""
        ns = self.namespace
        if ns is not None and (reason := ns.budget.spent_by(ns.spent + self._local)):
            return f"namespace budget: {reason}"
        state = self.streams.budget_seen.get(spec)
        if state is not None and (reason := state.paused_by):
            return f"spec budget: {reason}"
        return None

    def paused(self, spec: str) -> bool:
        return self.why(spec) is not None

    def checking(self, spec: str) -> bool:
        """True when completions of ``spec`` should read its budget back."""
        return spec in self.limited

    def active(self) -> list[str]:
        """The specs the worker may claim from now (logging pauses and resumes)."""
        out = []
        for spec in self.specs:
            why = self.why(spec)
            if why is None:
                if self._paused.pop(spec, None) is not None:
                    log.info("spec %s resumed: its budget allows more work", spec)
                out.append(spec)
            elif self._paused.get(spec) != why:
                if spec not in self._paused:
                    log.warning("spec %s paused (%s): no new tasks are claimed", spec, why)
                self._paused[spec] = why
        return out

    async def refresh(self) -> None:
        """Read every spec's budget and the namespace's (with the heartbeat)."""
        states = await self.budgets.specs(self.specs)
        self.streams.budget_seen.update(states)
        self.limited = {s for s, state in states.items() if not state.budget.unlimited}
        self.namespace, tallied = await self.budgets.namespace_tallied(self.interval)
        if self.namespace is None:
            self._recent.clear()
        while self._recent and self._recent[0][0] <= tallied:
            self._recent.popleft()  # in the tally already
        local = Totals()
        for _, spent in self._recent:
            local = local + spent
        self._local = local
