"""Redis connection (redis-py asyncio client) behind Trio-flavoured methods."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from aegra.adapters.aio import aio
from aegra.domain.errors import StoreUnavailable


class RedisClient:
    def __init__(self, url: str) -> None:
        self.url = url
        self.client: aioredis.Redis | None = None

    async def open(self) -> None:
        @aio
        async def _open() -> aioredis.Redis:
            return aioredis.Redis.from_url(
                self.url, socket_connect_timeout=5, health_check_interval=15
            )
        self.client = await _open()

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            @aio
            async def _close() -> None:
                await client.aclose()
            await _close()

    async def ping(self, timeout_s: float = 2.0) -> None:
        client = self.client
        if client is None:
            raise StoreUnavailable("redis client is not open")

        @aio
        async def _ping() -> None:
            async with asyncio.timeout(timeout_s):
                await client.ping()
        try:
            await _ping()
        except Exception as exc:
            raise StoreUnavailable(f"redis unavailable: {exc}") from exc
