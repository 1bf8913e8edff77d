"""asyncpg pool behind Trio-flavoured methods (one bridge crossing per call).

Multi-statement work should not call these in a loop: write an ``async def`` that takes a
connection and pass it to ``run`` so the whole unit crosses the bridge once and holds one
connection (count round trips). Rows come back as plain dicts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, TypeVarTuple

import asyncpg
import msgspec

from aegra.adapters.aio import aio
from aegra.domain.errors import StoreUnavailable

T = TypeVar("T")
Ts = TypeVarTuple("Ts")
_encoder = msgspec.json.Encoder()
_NUL = "\\u0000"


def _strip_nul(value: object) -> object:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_strip_nul(k): _strip_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strip_nul(v) for v in value]
    return value


def encode_json(value: object) -> str:
    """JSONB text; PostgreSQL rejects NUL in jsonb strings, so NULs are dropped."""
    text = _encoder.encode(value).decode()
    if _NUL in text:
        text = _encoder.encode(_strip_nul(msgspec.json.decode(text))).decode()
    return text


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("jsonb", "json"):
        await conn.set_type_codec(
            typename, encoder=encode_json, decoder=msgspec.json.decode, schema="pg_catalog"
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release a connection without asyncpg's default reset query.

    That query (``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``) costs a
    round trip and a transaction per pooled call, to undo session state this pool never
    creates: no session-level advisory locks (only ``pg_advisory_xact_lock``), cursors,
    LISTEN or SET. asyncpg still rolls back an open transaction and drops listeners
    before calling this. Keep it that way, or restore the reset.
    """


# Errors that mean "the database is not there", mapped to StoreUnavailable at this edge.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.ConnectionFailureError,
    # The server answers but the database is gone: dropped or renamed (3D000, 57P04), or
    # the session was ended by an operator or a server restart (57P01, 57P02). Not
    # QueryCanceledError, the other OperatorInterventionError: that is a statement's fate.
    asyncpg.exceptions.InvalidCatalogNameError,
    asyncpg.exceptions.DatabaseDroppedError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
)


class PgPool:
    """Owns one asyncpg pool; open and close it inside the bridge's loop."""

    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 10,
                 connect_timeout_s: float = 10.0) -> None:
        self.dsn = dsn
        self._min = min_size
        self._max = max_size
        self._timeout = connect_timeout_s
        self._pool: asyncpg.Pool | None = None

    @property
    def raw(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreUnavailable("database pool is not open")
        return self._pool

    async def open(self) -> None:
        @aio
        async def _open() -> asyncpg.Pool:
            return await asyncpg.create_pool(
                self.dsn, min_size=self._min, max_size=self._max, init=_init_connection,
                reset=_keep_session, timeout=self._timeout, command_timeout=60,
            )
        try:
            self._pool = await _open()
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc

    async def close(self) -> None:
        if self._pool is None:
            return
        pool, self._pool = self._pool, None

        @aio
        async def _close() -> None:
            try:
                await asyncio.wait_for(pool.close(), 5)
            except TimeoutError:
                pool.terminate()
        await _close()

    async def run(self, fn: Callable[[asyncpg.Connection, *Ts], Awaitable[T]], *args: *Ts
                  ) -> T:
        """Run ``fn(conn, *args)`` (an asyncio coroutine function) on one pooled connection."""
        pool = self.raw

        @aio
        async def _run() -> T:
            async with pool.acquire() as conn:
                return await fn(conn, *args)
        try:
            return await _run()
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"database unavailable: {exc}") from exc
        except asyncpg.exceptions.ObjectNotInPrerequisiteStateError as exc:
            # 55000 is also a statement's error; at connect it means ALLOW_CONNECTIONS false.
            if "not currently accepting connections" in str(exc):
                raise StoreUnavailable(f"database unavailable: {exc}") from exc
            raise

    async def fetch(self, sql: str, *args: object) -> list[dict[str, Any]]:
        async def _q(conn: asyncpg.Connection) -> list[dict[str, Any]]:
            return [dict(r) for r in await conn.fetch(sql, *args)]
        return await self.run(_q)

    async def fetchrow(self, sql: str, *args: object) -> dict[str, Any] | None:
        async def _q(conn: asyncpg.Connection) -> dict[str, Any] | None:
            row = await conn.fetchrow(sql, *args)
            return dict(row) if row is not None else None
        return await self.run(_q)

    async def fetchval(self, sql: str, *args: object) -> Any:  # noqa: ANN401  the SQL's column type
        async def _q(conn: asyncpg.Connection) -> Any:  # noqa: ANN401  as fetchval
            return await conn.fetchval(sql, *args)
        return await self.run(_q)

    async def execute(self, sql: str, *args: object) -> str:
        async def _q(conn: asyncpg.Connection) -> str:
            return await conn.execute(sql, *args)  # type: ignore[no-any-return]
        return await self.run(_q)

    async def ping(self, timeout_s: float = 2.0) -> None:
        async def _q(conn: asyncpg.Connection) -> None:
            await conn.fetchval("SELECT 1", timeout=timeout_s)
        await self.run(_q)
