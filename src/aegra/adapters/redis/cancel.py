"""CancelBus on Redis pub/sub ``aegra:run:cancel`` (messages ``<run_id> <action>``).

The request is also persisted in PostgreSQL (``runs.cancel_action``) before it is
published, so a listener that (re)connects re-reads it and nothing is missed; the
heartbeater also sees it in its lease statement, which covers a Redis outage.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import redis.asyncio as aioredis

from aegra.adapters.aio import aio
from aegra.adapters.redis.client import best_effort
from aegra.adapters.redis.fanout import RESYNC, Fanout

CHANNEL = b"aegra:run:cancel"


class RedisCancelBus:
    def __init__(self, client: aioredis.Redis, fanout: Fanout) -> None:
        self.client = client
        self.fanout = fanout

    async def publish(self, run_id: str, action: str) -> None:
        await best_effort("cancel.publish", partial(
            aio(self.client.publish), CHANNEL, f"{run_id} {action}"), None, run_id=run_id)

    async def listen(self, on_cancel: Callable[[str, str], None],
                     on_resync: Callable[[], None]) -> Callable[[bytes], None]:
        """Subscribe; returns the sink (pass it to ``stop``). ``StoreUnavailable`` when
        Redis does not confirm the subscription."""
        def sink(data: bytes) -> None:
            if data == RESYNC:
                on_resync()
                return
            run_id, _, action = data.decode().partition(" ")
            on_cancel(run_id, action or "interrupt")
        await self.fanout.subscribe(CHANNEL, sink)
        return sink

    async def stop(self, sink: Callable[[bytes], None]) -> None:
        await self.fanout.unsubscribe(CHANNEL, sink)
