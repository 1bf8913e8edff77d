"""JobQueue on the Redis list ``aegra:jobs`` (RPUSH / BLPOP), PostgreSQL as the fallback.

Workers block in BLPOP (instant delivery). When Redis cannot be reached they poll
PostgreSQL every ``poll_s`` for pending runs (``FOR UPDATE SKIP LOCKED``) and go back to
Redis by themselves once it answers again. A put that Redis refuses is not an error: the
run is in PostgreSQL, so polling (or the reaper's stuck-pending rule) finds it. Every
idle BLPOP timeout also looks in PostgreSQL once, which picks up runs created while
Redis was away without waiting for the stuck-pending threshold. A claim decides who
runs a run, so an id delivered twice is harmless. Errors are mapped, and these fallbacks
declared, in ``client.py``; ``redis.queue_unavailable`` marks the switch to polling.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import asyncpg
import redis.asyncio as aioredis
import trio

from aegra import logs
from aegra.adapters.aio import aio
from aegra.adapters.postgres.pool import PgPool
from aegra.adapters.redis.client import best_effort, fell_back, mapped
from aegra.domain.errors import StoreUnavailable

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
        push = aio(self.client.lpush if front else self.client.rpush)
        await best_effort("queue.push", partial(push, JOBS, run_id), None, run_id=run_id)

    async def _put_later(self, run_id: str, delay_s: float) -> None:
        await trio.sleep(delay_s)
        await self.put(run_id)

    def _down(self, exc: StoreUnavailable) -> None:
        if self.redis_up:  # once per outage, not once per poll
            fell_back("queue.pop", exc, event="redis.queue_unavailable", poll_s=self.poll_s)
        self.redis_up = False

    async def _pop(self) -> str | None:
        # Shielded and short: a BLPOP cancelled after Redis popped the id would lose it,
        # so the call always completes and a popped id goes back first.
        with trio.CancelScope(shield=True), mapped("queue.pop"):
            item = await aio(self.client.blpop)([JOBS], timeout=1)
        if not self.redis_up:
            log.info("redis.queue_restored")
        self.redis_up = True
        if item is None:
            # The only cancel point of an idle worker: without it a cancelled get waited
            # for the next PostgreSQL poll (up to poll_s) before it noticed.
            await trio.lowlevel.checkpoint()
            return None
        raw = item[1]
        run_id = raw.decode() if isinstance(raw, bytes) else raw
        try:
            await trio.lowlevel.checkpoint()
        except trio.Cancelled:
            with trio.CancelScope(shield=True):
                await self.put(run_id, front=True)
            raise
        return run_id

    async def get(self) -> str:
        last_poll = trio.current_time()
        while True:
            try:
                run_id = await self._pop()
            except StoreUnavailable as exc:  # the "queue.pop" fallback: poll PostgreSQL
                self._down(exc)
                found = await self._poll(min_age_s=0)
                if found is not None:
                    return found
                await trio.sleep(self.poll_s)
                continue
            if run_id is not None:
                return run_id
            if trio.current_time() - last_poll >= self.poll_s:
                # Idle: runs created while Redis was away sit only in PostgreSQL.
                last_poll = trio.current_time()
                found = await self._poll(min_age_s=self.poll_s)
                if found is not None:
                    return found

    async def _poll(self, *, min_age_s: float) -> str | None:
        async def _q(conn: asyncpg.Connection) -> str | None:
            async with conn.transaction():
                return await conn.fetchval(_POLL_SQL, min_age_s)  # type: ignore[no-any-return]
        try:
            return await self.pg.run(_q)
        except Exception as exc:  # noqa: BLE001  the database is the reaper's business
            log.warning("queue.poll_failed", error=repr(exc))
            return None

    async def depth(self) -> int:
        return int(await best_effort("queue.depth", partial(aio(self.client.llen), JOBS), -1))
