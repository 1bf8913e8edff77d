"""In-memory twin of ``PgThreadSweeps`` for actor tests under ``MockClock``.

Threads are records with an expiry on the Trio clock; the claim rule is
``domain.ttl.sweepable``, as in the SQL. ``hold`` marks rows another instance's sweeper
holds (skipped, as SKIP LOCKED does); ``batches`` records when each batch ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

from aegra.domain.errors import StoreUnavailable
from aegra.domain.ttl import SweepBatch, TtlDefault, sweepable


@dataclass
class MemThread:
    expires_at: float | None
    strategy: str = "delete"
    busy: bool = False
    active_run: bool = False
    checkpoints: int = 1
    runs: int = 0
    crons: int = 0


@dataclass
class MemoryThreadSweeps:
    threads: dict[str, MemThread] = field(default_factory=dict)
    default: TtlDefault | None = None
    held: set[str] = field(default_factory=set)
    batches: list[tuple[float, int]] = field(default_factory=list)  # (time, claimed)
    down: bool = False  # the store is unreachable

    async def set_default(self, default: TtlDefault | None) -> None:
        await trio.lowlevel.checkpoint()
        if self.down:
            raise StoreUnavailable("memory store is down")
        self.default = default

    async def sweep_batch(self, limit: int) -> SweepBatch:
        await trio.lowlevel.checkpoint()
        if self.down:
            raise StoreUnavailable("memory store is down")
        now = trio.current_time()
        claimed = [tid for tid, t in sorted(self.threads.items(),
                                            key=lambda kv: kv[1].expires_at or 0.0)
                   if tid not in self.held and sweepable(
                       expires_at=t.expires_at, now=now, busy=t.busy,
                       active_run=t.active_run)][:limit]
        deleted = pruned = checkpoints = runs = crons = 0
        for tid in claimed:
            t = self.threads[tid]
            if t.strategy == "keep_latest":
                pruned += 1
                checkpoints += max(0, t.checkpoints - 1)
                t.checkpoints, t.expires_at = min(t.checkpoints, 1), None
                continue
            del self.threads[tid]
            deleted += 1
            checkpoints += t.checkpoints
            runs += t.runs
            crons += t.crons
        self.batches.append((now, len(claimed)))
        return SweepBatch(claimed=len(claimed), deleted=deleted, pruned=pruned,
                          checkpoints=checkpoints, runs=runs, crons=crons)
