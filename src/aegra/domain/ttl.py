"""Thread time-to-live: what expires, what a sweep does with it, when the next one runs. Pure.

A thread with a TTL (its own, from create/PATCH, or the deployment's
``checkpointer.ttl.default_ttl`` stamped when it was created) expires ``ttl_minutes``
after its last activity: creation, a PATCH, a run starting or finishing, a state update.
Expiry is not enough to be swept: a thread that is ``busy`` or has a pending or running
run is left alone (its run restarts the clock when it ends), so a sweep never deletes a
thread under a run.

Strategies, as on the platform: ``delete`` removes the thread with its checkpoints,
writes, runs and crons; ``keep_latest`` keeps the thread and the latest checkpoint of each
namespace, pruning the older ones, and stops the clock until the next activity.
"""

from __future__ import annotations

from typing import Literal, Protocol

import msgspec

Strategy = Literal["delete", "keep_latest"]
STRATEGIES: tuple[Strategy, ...] = ("delete", "keep_latest")
DEFAULT_SWEEP_INTERVAL_MINUTES = 5.0  # the platform's, when only a default TTL is given
SETTING_KEY = "thread_ttl_default"  # aegra_settings row the creation trigger reads


class TtlDefault(msgspec.Struct, frozen=True, kw_only=True):
    """``checkpointer.ttl``: applied to threads created without a TTL of their own."""
    strategy: Strategy = "delete"
    ttl_minutes: float


class SweepBatch(msgspec.Struct, frozen=True, kw_only=True):
    """One claimed batch, done in one short transaction."""
    claimed: int  # expired rows this batch locked (the batch is full when == limit)
    deleted: int = 0  # threads deleted (strategy delete)
    pruned: int = 0  # threads pruned to their latest checkpoint (keep_latest)
    checkpoints: int = 0  # checkpoint rows removed (either strategy)
    runs: int = 0  # runs removed with their thread
    crons: int = 0  # crons removed with their thread


class SweepTotals(msgspec.Struct, kw_only=True):
    batches: int = 0
    deleted: int = 0
    pruned: int = 0
    checkpoints: int = 0
    runs: int = 0
    crons: int = 0

    def add(self, batch: SweepBatch) -> None:
        self.batches += 1
        self.deleted += batch.deleted
        self.pruned += batch.pruned
        self.checkpoints += batch.checkpoints
        self.runs += batch.runs
        self.crons += batch.crons


def sweepable(*, expires_at: float | None, now: float, busy: bool, active_run: bool) -> bool:
    """The claim rule (the SQL in adapters/postgres/ttl.py says the same)."""
    return expires_at is not None and expires_at <= now and not busy and not active_run


def more_to_do(batch: SweepBatch, limit: int) -> bool:
    """A full batch means expired rows may remain: take another after a pause."""
    return batch.claimed >= limit


def pause_s(batch_s: float, *, max_duty: float, min_pause_s: float) -> float:
    """The pause after a batch that took ``batch_s``: the sweeper spends at most
    ``max_duty`` of its time in transactions, so a batch of heavy threads (many
    checkpoints) is followed by a longer rest and live traffic keeps its share of the
    database whatever the shape of the backlog."""
    return max(min_pause_s, batch_s * (1.0 - max_duty) / max_duty)


def interval_s(sweep_interval_minutes: float | None, configured_s: float) -> float:
    """``[sweeper] interval_s`` wins when set (> 0: operators and tests), then the
    project's ``checkpointer.ttl.sweep_interval_minutes``, then the platform's default."""
    if configured_s > 0:
        return configured_s
    minutes = sweep_interval_minutes or DEFAULT_SWEEP_INTERVAL_MINUTES
    return minutes * 60.0


class ThreadSweeps(Protocol):
    """The sweeper's port: the default TTL new threads get, and one claimed batch."""

    async def set_default(self, default: TtlDefault | None) -> None: ...

    async def sweep_batch(self, limit: int) -> SweepBatch: ...
