"""JobQueue on the Redis list ``aegra:jobs`` (RPUSH / BLPOP), PostgreSQL as the fallback.

Workers block in BLPOP (instant delivery). When Redis cannot be reached they poll
PostgreSQL every ``poll_s`` for pending runs (``FOR UPDATE SKIP LOCKED``) and go back to
Redis by themselves once it answers again. A put that Redis refuses is not an error: the
run is in PostgreSQL, so polling (or the reaper's stuck-pending rule) finds it. Every
idle BLPOP timeout also looks in PostgreSQL once, which picks up runs created while
Redis was away without waiting for the stuck-pending threshold. A claim decides who
runs a run, so an id delivered twice is harmless.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
import trio

from aegra import logs
from aegra.adapters.aio import aio
from aegra.adapters.postgres.pool import PgPool

log = logs.get_logger("aegra.redis.queue")
JOBS = "aegra:jobs"

_POLL_SQL = """
SELECT run_id FROM runs
WHERE status = 'pending' AND available_at <= now()
  AND updated_at < now() - make_interval(secs => $1)
ORDER BY available_at, created_at
LIMIT 1 FOR UPDATE SKIP LOCKED
"""


class RedisQueue:
    def __init__(self, client: aioredis.Redis, pg: PgPool, *, poll_s: float,
                 spawn: Callable[..., None] | None = None) -> None:
        self.client = client
        self.pg = pg
        self.poll_s = poll_s
        self.spawn = spawn
        self.redis_up = True

    async def put(self, run_id: str, *, front: bool = False, delay_s: float = 0.0) -> None:
        if delay_s > 0 and self.spawn is not None:
            self.spawn(self._put_later, run_id, delay_s)
            return
        try:
            await aio(self.client.lpush if front else self.client.rpush)(JOBS, run_id)
        except Exception as exc:  # noqa: BLE001  the run is safe in PostgreSQL
            self._down(exc)

    async def _put_later(self, run_id: str, delay_s: float) -> None:
        await trio.sleep(delay_s)
        await self.put(run_id)

    def _down(self, exc: BaseException) -> None:
        if self.redis_up:
            log.warning("redis.queue_unavailable", error=repr(exc),
                        fallback=f"polling PostgreSQL every {self.poll_s:g}s")
        self.redis_up = False

    async def get(self) -> str:
        last_poll = trio.current_time()
        while True:
            found: str | None = None
            try:
                # Shielded and short: a BLPOP cancelled after Redis popped the id would
                # lose it, so the call always completes and a popped id goes back first.
                with trio.CancelScope(shield=True):
                    item = await aio(self.client.blpop)([JOBS], timeout=1)
                if not self.redis_up:
                    log.info("redis.queue_restored")
                self.redis_up = True
                if item is not None:
                    run_id: str = item[1].decode()
                    try:
                        await trio.lowlevel.checkpoint()
                    except trio.Cancelled:
                        with trio.CancelScope(shield=True):
                            await self.put(run_id, front=True)
                        raise
                    return run_id
                if trio.current_time() - last_poll >= self.poll_s:
                    # Idle: runs created while Redis was away sit only in PostgreSQL.
                    last_poll = trio.current_time()
                    found = await self._poll(min_age_s=self.poll_s)
            except trio.Cancelled:
                raise
            except Exception as exc:  # noqa: BLE001  any Redis failure: poll PostgreSQL
                self._down(exc)
                found = await self._poll(min_age_s=0)
                if found is None:
                    await trio.sleep(self.poll_s)
            if found is not None:
                return found

    async def _poll(self, *, min_age_s: float) -> str | None:
        async def _q(conn: Any) -> str | None:
            async with conn.transaction():
                return await conn.fetchval(_POLL_SQL, min_age_s)  # type: ignore[no-any-return]
        try:
            return await self.pg.run(_q)
        except Exception as exc:  # noqa: BLE001  the database is the reaper's business
            log.warning("queue.poll_failed", error=repr(exc))
            return None

    async def depth(self) -> int:
        try:
            return int(await aio(self.client.llen)(JOBS))
        except Exception:  # noqa: BLE001
            return -1
