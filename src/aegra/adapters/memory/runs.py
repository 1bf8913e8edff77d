"""In-memory twin of the run store and lease store, on the Trio clock (ring-1 tests).

Same contract as ``PgRuns``/``PgLeases`` for what workers, the heartbeater and the reaper
use: claim (one running run per thread, FIFO), fenced finish/release/extend, reap. Lease
times are ``trio.current_time()`` so a ``MockClock`` drives expiry deterministically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import trio

from aegra.domain.leases import Expired, ReapResult
from aegra.domain.ports import ClaimedRun, Outcome


@dataclass
class MemRun:
    run_id: str
    thread_id: str
    params: dict[str, Any] = field(default_factory=dict)
    status: str = "pending"
    claimed_by: str | None = None
    lease_expires_at: float | None = None
    attempt: int = 0
    retries: int = 0
    created: float = field(default_factory=trio.current_time)
    updated: float = field(default_factory=trio.current_time)
    output: Any = None
    error: Any = None
    writes: list[str] = field(default_factory=list)  # who finished it (fencing checks)
    cancel_action: str | None = None


class MemoryRunStore:
    def __init__(self) -> None:
        self.runs: dict[str, MemRun] = {}

    def add(self, run_id: str, thread_id: str = "t", **params: object) -> MemRun:
        run = self.runs[run_id] = MemRun(run_id, thread_id, params or {"graph_id": "g"})
        return run

    # -- RunStore ----------------------------------------------------------------------
    async def claim(self, run_id: str, owner: str, lease_s: float) -> ClaimedRun | None:
        run = self.runs.get(run_id)
        if run is None or run.status != "pending" or run.claimed_by is not None:
            return None
        same_thread = [r for r in self.runs.values() if r.thread_id == run.thread_id]
        if any(r.status == "running" for r in same_thread):
            return None
        first = min((r for r in same_thread if r.status == "pending"),
                    key=lambda r: (r.created, r.run_id))
        if first is not run:
            return None
        run.status, run.claimed_by = "running", owner
        run.attempt += 1
        run.lease_expires_at = trio.current_time() + lease_s
        return ClaimedRun(run_id=run_id, thread_id=run.thread_id, assistant_id="a",
                          attempt=run.attempt, params=run.params, metadata={},
                          stateless=False, user_id=None)

    def _owns(self, claimed: ClaimedRun, owner: str) -> MemRun | None:
        run = self.runs.get(claimed.run_id)
        if run is None or run.claimed_by != owner or run.attempt != claimed.attempt:
            return None
        return run

    async def finish(self, claimed: ClaimedRun, owner: str, outcome: Outcome,
                     values: object, interrupts: dict[str, Any]) -> tuple[bool, str | None]:
        run = self._owns(claimed, owner)
        if run is None:
            return False, None
        run.status, run.output, run.error = outcome.status, outcome.values, outcome.error
        run.claimed_by = run.lease_expires_at = None
        run.writes.append(owner)
        pending = sorted((r for r in self.runs.values()
                          if r.thread_id == run.thread_id and r.status == "pending"),
                         key=lambda r: (r.created, r.run_id))
        return True, pending[0].run_id if pending else None

    async def release(self, claimed: ClaimedRun, owner: str) -> bool:
        run = self._owns(claimed, owner)
        if run is None:
            return False
        run.status, run.claimed_by, run.lease_expires_at = "pending", None, None
        return True

    # -- LeaseStore --------------------------------------------------------------------
    async def extend(self, owner: str, run_ids: list[str], lease_s: float
                     ) -> dict[str, str | None]:
        kept: dict[str, str | None] = {}
        for run_id in run_ids:
            run = self.runs.get(run_id)
            if run and run.claimed_by == owner and run.status == "running":
                run.lease_expires_at = trio.current_time() + lease_s
                kept[run_id] = run.cancel_action
        return kept

    async def cancel_requests(self, owner: str) -> list[tuple[str, str]]:
        return [(r.run_id, r.cancel_action) for r in self.runs.values()
                if r.claimed_by == owner and r.status == "running"
                and r.cancel_action is not None]

    def _expired(self, run: MemRun) -> bool:
        return run.status == "running" and (
            run.lease_expires_at is None or run.lease_expires_at < trio.current_time())

    async def reap(self, max_retries: int, stuck_pending_s: float) -> ReapResult:
        now = trio.current_time()
        requeue, exhausted, stuck = [], [], []
        for run in self.runs.values():
            if self._expired(run) and run.retries < max_retries:
                run.status, run.claimed_by, run.lease_expires_at = "pending", None, None
                run.retries += 1
                run.updated = now
                requeue.append(run.run_id)
            elif self._expired(run):
                exhausted.append(Expired(run_id=run.run_id, thread_id=run.thread_id,
                                         graph_id=run.params.get("graph_id"),
                                         retries=run.retries))
            elif run.status == "pending" and run.updated < now - stuck_pending_s:
                run.updated = now
                stuck.append(run.run_id)
        return ReapResult(requeue=requeue, exhausted=exhausted, stuck=stuck)

    async def settle(self, expired: Expired, values: object, message: str | None) -> bool:
        run = self.runs.get(expired.run_id)
        if run is None or not self._expired(run):
            return False
        run.status = "success" if message is None else "error"
        run.output = values
        run.error = None if message is None else {"error": "RetriesExhausted",
                                                  "message": message}
        run.claimed_by = run.lease_expires_at = None
        return True
