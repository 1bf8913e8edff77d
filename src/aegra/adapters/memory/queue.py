"""In-memory JobQueue: a deque of run ids behind a Trio condition (single instance)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import trio


class MemoryQueue:
    def __init__(self, spawn: Callable[..., None] | None = None) -> None:
        self._items: deque[str] = deque()
        self._ready = trio.Condition()
        self._spawn = spawn  # where delayed puts (after_seconds) wait: a supervised nursery

    async def put(self, run_id: str, *, front: bool = False, delay_s: float = 0.0) -> None:
        if delay_s > 0 and self._spawn is not None:
            self._spawn(self._put_later, run_id, delay_s)
            return
        async with self._ready:
            (self._items.appendleft if front else self._items.append)(run_id)
            self._ready.notify()

    async def _put_later(self, run_id: str, delay_s: float) -> None:
        await trio.sleep(delay_s)
        await self.put(run_id)

    async def get(self) -> str:
        async with self._ready:
            while not self._items:
                await self._ready.wait()
            return self._items.popleft()

    async def depth(self) -> int:
        return len(self._items)
