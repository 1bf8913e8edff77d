"""Lease rules: when a worker must fence itself, what the reaper does. Pure.

A worker owns a run while its lease (``lease_expires_at``, PostgreSQL time) is in the
future. The heartbeater extends all of this instance's leases in one statement per
interval, on a deadline shorter than the lease. If it could not confirm a lease for
``lease - margin`` seconds (Trio clock, measured from the last confirmation), the worker
cancels that run itself: by then the reaper may have handed it to someone else.
"""

from __future__ import annotations

import msgspec


class Expired(msgspec.Struct, frozen=True, kw_only=True):
    run_id: str
    thread_id: str
    graph_id: str | None
    retries: int


class ReapResult(msgspec.Struct, frozen=True, kw_only=True):
    requeue: list[str]  # expired with retries left: pending again, to the queue's head
    exhausted: list[Expired]  # expired, no retries left: settle (finished output or error)
    stuck: list[str]  # pending too long (a lost queue message): send again


def fence_margin(lease_s: float) -> float:
    """Safety margin before lease expiry at which a worker stops on its own."""
    return min(2.0, lease_s * 0.2)


def heartbeat_deadline(interval_s: float, lease_s: float) -> float:
    """How long one heartbeat statement may take: shorter than the lease, always."""
    return max(0.1, min(interval_s, (lease_s - fence_margin(lease_s)) / 2))


def exhausted_message(retries: int) -> str:
    return (f"run failed: its worker was lost {retries} times and BG_JOB_MAX_RETRIES "
            f"({retries}) is exhausted")
