"""LangGraph's official PostgreSQL checkpointer and store, on one psycopg pool.

Opened inside the bridge's asyncio loop at startup and closed before it exits. The pool
size is ``postgres.checkpointer_pool_max_size``; together with ``postgres.pool_max_size``
(asyncpg) it is this instance's share of PostgreSQL's ``max_connections``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.store.postgres.aio import AsyncPostgresStore
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from aegra.adapters.aio import aio
from aegra.adapters.langgraph.fenced import FencedSaver
from aegra.domain.errors import StoreUnavailable


class LangGraphPersistence:
    def __init__(self, dsn: str, *, max_size: int = 10,
                 store_index: dict[str, Any] | None = None,
                 store_ttl: dict[str, Any] | None = None) -> None:
        self.dsn = dsn
        self.max_size = max_size
        self.store_index = store_index  # see store_index.py: semantic search, TTL
        self.store_ttl = store_ttl
        self.pool: AsyncConnectionPool[Any] | None = None
        self.checkpointer: AsyncPostgresSaver | None = None
        self.store: AsyncPostgresStore | None = None

    async def open(self) -> None:
        @aio
        async def _open() -> None:
            pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
                self.dsn, min_size=1, max_size=self.max_size, open=False,
                kwargs={"autocommit": True, "prepare_threshold": None, "row_factory": dict_row},
            )
            await pool.open(wait=True, timeout=15)
            self.pool = pool
            # Fenced by the run's claim, and without the class-wide lock (see fenced.py).
            self.checkpointer = FencedSaver(pool)
            store = AsyncPostgresStore(pool, index=self.store_index,  # type: ignore[arg-type]
                                       ttl=self.store_ttl)  # type: ignore[arg-type]
            if self.store_ttl:
                # LangGraph's own sweeper task lives in the bridge's loop; close() stops it.
                await store.start_ttl_sweeper()
            self.store = store
        try:
            await _open()
        except Exception as exc:
            raise StoreUnavailable(f"cannot open the LangGraph checkpointer pool: {exc}") from exc

    async def close(self) -> None:
        pool, self.pool = self.pool, None
        if pool is None:
            return

        store = self.store

        @aio
        async def _close() -> None:
            if store is not None:
                await store.stop_ttl_sweeper(timeout=2)
            await pool.close(timeout=5)
        await _close()

    async def ping(self, timeout_s: float = 2.0) -> None:
        pool = self.pool
        if pool is None:
            raise StoreUnavailable("checkpointer pool is not open")

        @aio
        async def _ping() -> None:
            async with asyncio.timeout(timeout_s):
                async with pool.connection() as conn:
                    await conn.execute("SELECT 1")
        try:
            await _ping()
        except Exception as exc:
            raise StoreUnavailable(f"checkpointer unavailable: {exc}") from exc
