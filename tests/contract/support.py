"""What the contract suites share: a pooled connection to a migrated test database, on
the trio-asyncio bridge, for the real-adapter side of each suite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aegra.adapters import aio
from aegra.adapters.postgres.pool import PgPool


@asynccontextmanager
async def pg_pool(dsn: str, max_size: int = 2) -> AsyncIterator[PgPool]:
    """An open pool inside a bridge loop, closed (before the loop) on the way out."""
    async with aio.open_loop():
        pool = PgPool(dsn, min_size=1, max_size=max_size)
        await pool.open()
        try:
            yield pool
        finally:
            await pool.close()
