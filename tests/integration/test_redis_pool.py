"""Ring 2: the Redis client's connection pool under a burst (``adapters/redis/client.py``).

Adaptive capacity lets hundreds of runs publish and replay at once. Past the pool's size
a command must wait for a free connection, not fail: redis-py's default pool raises
"Too many connections" at once, and each such failure sent a batch of events to the
fallback (only the local log) and ended replays with an error.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import trio

from aegra.adapters import aio
from aegra.adapters.redis.client import RedisClient, mapped
from aegra.domain.errors import StoreUnavailable

HOLD_S = 0.2  # each command holds its connection this long (BLPOP on an empty list)


async def _burst(client: RedisClient, n: int) -> list[Any]:
    key = f"pool-test:{uuid.uuid4().hex}"
    redis = client.client
    assert redis is not None

    async def one() -> Any:  # noqa: ANN401  redis-py's untyped answer
        return await redis.blpop([key], timeout=HOLD_S)

    async def all_of_them() -> list[Any]:
        import asyncio

        return list(await asyncio.gather(*(one() for _ in range(n))))

    with mapped("ping"):
        return await aio.call(all_of_them)


async def test_a_burst_past_the_pool_size_waits_for_connections(redis_url: str) -> None:
    async with aio.open_loop():
        client = RedisClient(redis_url, max_connections=4, pool_timeout_s=30)
        await client.open()
        try:
            started = trio.current_time()
            answers = await _burst(client, 24)
            elapsed = trio.current_time() - started
        finally:
            await client.close()
    assert answers == [None] * 24  # every command ran (BLPOP timed out empty), none failed
    # 24 commands of HOLD_S through 4 connections: at least 6 rounds, so they queued.
    assert elapsed >= 6 * HOLD_S * 0.9


async def test_a_connection_not_free_within_the_timeout_is_redis_unavailable(
        redis_url: str) -> None:
    async with aio.open_loop():
        client = RedisClient(redis_url, max_connections=4, pool_timeout_s=0.05)
        await client.open()
        try:
            with pytest.raises(StoreUnavailable, match=r"Redis unavailable \(ping\)"):
                await _burst(client, 24)
        finally:
            await client.close()
