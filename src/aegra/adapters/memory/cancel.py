"""In-memory CancelBus: a cancel request reaches every listener of this process.

The twin of ``RedisCancelBus`` with the same ``publish``/``listen``/``stop`` the cancel
listener actor uses, kept honest by tests/contract/test_cancel_bus.py: each listener
gets every request published while it listens, in publishing order, and nothing after
``stop``. Single-instance mode needs no bus (the run service reaches a local run through
the registry); this one serves tests and the in-process API ring, where a listener is
how a test sees that a cancel was signalled. There is no connection to lose, so
``on_resync`` is never called.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

OnCancel = Callable[[str, str], None]


class MemoryCancelBus:
    def __init__(self) -> None:
        self._listeners: list[OnCancel] = []

    async def publish(self, run_id: str, action: str) -> None:
        await trio.lowlevel.checkpoint()  # a publish is a suspension point, as on Redis
        for on_cancel in list(self._listeners):
            on_cancel(run_id, action or "interrupt")  # Redis' parser defaults it the same

    async def listen(self, on_cancel: OnCancel, on_resync: Callable[[], None]) -> OnCancel:
        """Subscribe; returns the handle to pass to ``stop``."""
        self._listeners.append(on_cancel)
        return on_cancel

    async def stop(self, handle: OnCancel) -> None:
        if handle in self._listeners:
            self._listeners.remove(handle)
