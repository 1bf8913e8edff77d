"""The JobQueue contract, run on the in-memory queue and on Redis (with its PostgreSQL
fallback wired, as in production) alike.

Redis runs privately here: the queue's list has one fixed name, and a shared server may
be feeding another test's workers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
import redis.asyncio as aioredis
import trio

from aegra.adapters import aio
from aegra.adapters.memory.queue import MemoryQueue
from aegra.adapters.postgres import migrate
from aegra.adapters.postgres.listen import PgListener
from aegra.adapters.postgres.pool import PgPool
from aegra.adapters.postgres.queue import PgJobQueue
from aegra.adapters.redis.queue import RedisQueue
from tests.contract.support import pg_pool


@pytest.fixture(params=["memory", "redis", "postgres"])
def backend(request: pytest.FixtureRequest) -> Any:
    """An async context manager factory yielding a fresh queue whose delayed puts wait
    in a nursery of the test's."""
    if request.param == "memory":
        @asynccontextmanager
        async def open_memory() -> AsyncIterator[Any]:
            async with trio.open_nursery() as nursery:
                yield MemoryQueue(spawn=nursery.start_soon)
        return open_memory
    if request.param == "postgres":
        return partial(open_postgres, request.getfixturevalue("database_url"))
    url = request.getfixturevalue("private_redis").url
    dsn = request.getfixturevalue("database_url")
    migrate.ensure_migrated(dsn)

    @asynccontextmanager
    async def open_redis() -> AsyncIterator[Any]:
        async with aio.open_loop():
            client = await aio.call(_client, url)
            pool = PgPool(dsn, min_size=1, max_size=2)
            await pool.open()
            try:
                async with trio.open_nursery() as nursery:
                    # poll_s far beyond the test: an idle get must be cancellable between
                    # BLPOP rounds, not only at its PostgreSQL poll (it once was).
                    yield RedisQueue(client, pool, poll_s=3600, spawn=nursery.start_soon)
            finally:
                await pool.close()
                await aio.call(client.aclose)
    return open_redis


@asynccontextmanager
async def open_postgres(dsn: str) -> AsyncIterator[Any]:
    """The queue several processes share without Redis (issue 11): a private database,
    so the table holds only this test's ids; poll_s far beyond the test, so a get
    returns on a NOTIFY (or a delayed row's due time), never on the safety-net poll."""
    migrate.ensure_migrated(dsn)
    async with pg_pool(dsn) as pool:
        listener = PgListener(dsn)
        await listener.open()
        try:
            yield PgJobQueue(pool, listener, poll_s=3600)
        finally:
            await listener.close()


async def _client(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(url, socket_connect_timeout=2)


async def test_fifo_front_first_depth_and_duplicates(backend: Any) -> None:
    async with backend() as queue:
        assert await queue.depth() == 0
        for run_id in ("r1", "r2", "r1"):
            await queue.put(run_id)
        await queue.put("urgent", front=True)
        assert await queue.depth() == 4
        with trio.fail_after(10):
            got = [await queue.get() for _ in range(4)]
        # A duplicate is delivered again: the claim, not the queue, decides who runs.
        assert got == ["urgent", "r1", "r2", "r1"]
        assert await queue.depth() == 0


async def test_get_waits_for_the_next_put(backend: Any) -> None:
    async with backend() as queue:
        got: list[str] = []

        async def getter() -> None:
            got.append(await queue.get())

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(getter)
                await queue.put("late")
        assert got == ["late"]


async def test_a_cancelled_get_loses_nothing(backend: Any) -> None:
    async with backend() as queue:
        with trio.move_on_after(0.2) as waited:
            await queue.get()  # empty: only the timeout ends it
        assert waited.cancelled_caught
        await queue.put("a")
        await queue.put("b")
        with trio.fail_after(10):
            assert [await queue.get(), await queue.get()] == ["a", "b"]
        assert await queue.depth() == 0


async def test_a_delayed_put_arrives_after_the_delay(backend: Any) -> None:
    async with backend() as queue:
        await queue.put("later", delay_s=1.0)
        await queue.put("now")
        with trio.fail_after(10):
            assert await queue.get() == "now"
            assert await queue.get() == "later"
