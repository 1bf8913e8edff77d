"""The CancelBus contract (publish, and the listen/stop the cancel listener actor uses),
run on the in-memory bus, on Redis pub/sub and on PostgreSQL NOTIFY.

A shared Redis server may carry other tests' cancels on the same channel: listeners
here keep only the run ids this test made.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
import redis.asyncio as aioredis
import trio

from aegra.adapters import aio
from aegra.adapters.memory.cancel import MemoryCancelBus
from aegra.adapters.postgres.cancel import PgCancelBus
from aegra.adapters.postgres.listen import PgListener
from aegra.adapters.redis.cancel import RedisCancelBus
from aegra.adapters.redis.fanout import Fanout
from tests.contract.support import pg_pool


@pytest.fixture(params=["memory", "redis", "postgres"])
def backend(request: pytest.FixtureRequest) -> Any:
    if request.param == "memory":
        @asynccontextmanager
        async def open_memory() -> AsyncIterator[Any]:
            yield MemoryCancelBus()
        return open_memory
    if request.param == "postgres":
        return partial(open_postgres, request.getfixturevalue("database_url"))
    url = request.getfixturevalue("redis_url")

    @asynccontextmanager
    async def open_redis() -> AsyncIterator[Any]:
        async with aio.open_loop():
            client = await aio.call(_client, url)
            fanout = Fanout(client)
            await fanout.open()
            try:
                with trio.fail_after(10):
                    # ``healthy`` is a plain flag the pub/sub reader sets once connected.
                    while not fanout.healthy:  # noqa: ASYNC110
                        await trio.sleep(0.01)
                yield RedisCancelBus(client, fanout)
            finally:
                await fanout.close()
                await aio.call(client.aclose)
    return open_redis


@asynccontextmanager
async def open_postgres(dsn: str) -> AsyncIterator[Any]:
    """NOTIFY ``aegra_cancel`` on a LISTEN connection (issue 11, no Redis)."""
    async with pg_pool(dsn) as pool:
        listener = PgListener(dsn)
        await listener.open()
        try:
            assert listener.healthy
            yield PgCancelBus(pool, listener)
        finally:
            await listener.close()


async def _client(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(url, socket_connect_timeout=2)


class Listener:
    """Collects the cancels for this test's runs; ``next()`` waits for one."""

    def __init__(self, mine: set[str]) -> None:
        self.mine = mine
        self.send, self.recv = trio.open_memory_channel[tuple[str, str]](100)
        self.got: list[tuple[str, str]] = []

    def on_cancel(self, run_id: str, action: str) -> None:
        if run_id in self.mine:
            self.got.append((run_id, action))
            self.send.send_nowait((run_id, action))

    async def next(self) -> tuple[str, str]:
        with trio.fail_after(10):
            return await self.recv.receive()


def ids(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


async def test_every_listener_gets_each_request_in_order_until_it_stops(backend: Any
                                                                        ) -> None:
    async with backend() as bus:
        r1, r2, r3 = mine = ids(3)
        a, b = Listener(set(mine)), Listener(set(mine))
        handle_a = await bus.listen(a.on_cancel, lambda: None)
        handle_b = await bus.listen(b.on_cancel, lambda: None)
        await bus.publish(r1, "interrupt")
        await bus.publish(r2, "rollback")
        for listener in (a, b):
            assert [await listener.next(), await listener.next()] == [
                (r1, "interrupt"), (r2, "rollback")]
        await bus.stop(handle_a)
        await bus.publish(r3, "interrupt")
        assert await b.next() == (r3, "interrupt")
        # One connection delivers in publishing order: had ``a`` still listened, r3
        # would have reached it before it reached ``b``.
        assert a.got == [(r1, "interrupt"), (r2, "rollback")]
        await bus.stop(handle_b)


async def test_a_request_published_before_listening_is_not_replayed(backend: Any) -> None:
    async with backend() as bus:
        early, late = mine = ids(2)
        await bus.publish(early, "interrupt")  # nobody listens: not an error
        listener = Listener(set(mine))
        handle = await bus.listen(listener.on_cancel, lambda: None)
        await bus.publish(late, "rollback")
        assert await listener.next() == (late, "rollback")
        assert listener.got == [(late, "rollback")]
        await bus.stop(handle)
