"""Ring 1: the cancel listener rides out a cancel bus that is unavailable (a fake bus)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pytest
import trio
import trio.testing

from aegra.domain.errors import StoreUnavailable
from aegra.runtime.registry import RunRegistry
from aegra.supervisor.cancel_listener import run_cancel_listener

Sink = Callable[[bytes], None]


class FlakyBus:
    """Refuses the first ``failures`` subscriptions the way the Redis bus does."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.attempts: list[float] = []
        self.on_cancel: Callable[[str, str], None] | None = None
        self.stopped = 0

    async def listen(self, on_cancel: Callable[[str, str], None],
                     on_resync: Callable[[], None]) -> Sink:
        self.attempts.append(trio.current_time())
        if len(self.attempts) <= self.failures:
            raise self.error
        self.on_cancel = on_cancel
        return lambda data: None

    async def stop(self, sink: Sink) -> None:
        self.stopped += 1


async def test_started_despite_an_unavailable_bus_then_retries_and_rereads(
        autojump_clock: trio.testing.MockClock) -> None:
    bus = FlakyBus(2, StoreUnavailable("Redis unavailable (fanout.subscribe): down"))
    registry = RunRegistry()
    rereads: list[float] = []
    cancelled: list[str | None] = []

    async def reread() -> list[tuple[str, str]]:
        rereads.append(trio.current_time())
        return [("r1", "interrupt")]  # persisted while the bus was away

    async def run() -> None:
        with registry.open("r1") as entry:
            try:
                await trio.sleep_forever()
            finally:
                cancelled.append(entry.reason)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        await nursery.start(partial(run_cancel_listener, bus, registry, reread, retry_s=2))
        assert trio.current_time() == 0  # started after the first (failed) attempt
        await trio.sleep(5)
        assert bus.attempts == [0, 2, 4]
        assert rereads == [4]
        assert cancelled == ["interrupt"]
        nursery.cancel_scope.cancel()
    assert bus.stopped == 1


async def test_a_builtin_connection_error_is_not_the_listeners_business(
        autojump_clock: trio.testing.MockClock) -> None:
    """Library errors are mapped by the bus; anything else is a crash for the policy."""
    bus = FlakyBus(1, ConnectionError("unmapped"))

    async def reread() -> list[tuple[str, str]]:
        return []

    with pytest.raises(ConnectionError):
        await run_cancel_listener(bus, RunRegistry(), reread)
