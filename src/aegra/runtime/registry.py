"""run_id -> (CancelScope, reason) for the runs executing in this process. Trio only.

The worker task that runs a run opens its scope with ``registry.open(run_id)``; anyone
else (HTTP cancel, cancel listener, lease loss, drain) calls ``cancel(run_id, reason)``.
The reason is stored before ``scope.cancel()`` so the run's cleanup can read why.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import trio


@dataclass
class RunEntry:
    run_id: str
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    reason: str | None = None  # "interrupt" | "rollback" | "lease_lost" | "drain" | "timeout"
    opened_at: float = field(default_factory=trio.current_time)  # ~ when the lease was taken


class RunRegistry:
    def __init__(self) -> None:
        self._runs: dict[str, RunEntry] = {}
        self._empty = trio.Event()
        self._empty.set()

    def __len__(self) -> int:
        return len(self._runs)

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._runs

    def ids(self) -> list[str]:
        return list(self._runs)

    def opened_at(self, run_id: str) -> float:
        entry = self._runs.get(run_id)
        return entry.opened_at if entry is not None else trio.current_time()

    @contextmanager
    def open(self, run_id: str) -> Iterator[RunEntry]:
        """Register a run and enter its cancel scope for the duration of the block."""
        if run_id in self._runs:
            raise RuntimeError(f"run {run_id} is already executing in this process")
        entry = RunEntry(run_id)
        self._runs[run_id] = entry
        if self._empty.is_set():
            self._empty = trio.Event()
        try:
            with entry.scope:
                yield entry
        finally:
            del self._runs[run_id]
            if not self._runs:
                self._empty.set()

    def cancel(self, run_id: str, reason: str) -> bool:
        entry = self._runs.get(run_id)
        if entry is None:
            return False
        if entry.reason is None:
            entry.reason = reason
        entry.scope.cancel()
        return True

    def cancel_all(self, reason: str) -> int:
        for run_id in list(self._runs):
            self.cancel(run_id, reason)
        return len(self._runs)

    async def wait_empty(self) -> None:
        await self._empty.wait()
