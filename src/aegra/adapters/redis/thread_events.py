"""Thread-level events on Redis pub/sub ``aegra:thread:{id}`` (``<name>\\n<data>``).

What ``RedisBroker.publish_thread``/``listen_thread`` do: a ``state_update`` written on
one instance reaches the thread join streams open on every instance. Live only, like
the platform's: nothing is buffered for a stream that joins later (the state itself stays
readable). Listeners share the instance's one pub/sub connection (``Fanout``).

When Redis is away a listener falls back to the instance's in-memory broker, and every
publish also goes there, so streams and writers on one instance still meet; a sink is
registered in one place only, so nothing arrives twice.
"""

from __future__ import annotations

from functools import partial

import redis.asyncio as aioredis

from aegra.adapters.aio import aio
from aegra.adapters.memory.broker import MemoryBroker
from aegra.adapters.redis.client import best_effort, fell_back
from aegra.adapters.redis.fanout import RESYNC, Fanout
from aegra.domain.errors import StoreUnavailable
from aegra.domain.ports import ThreadHandle, ThreadSink


def channel(thread_id: str) -> bytes:
    return f"aegra:thread:{thread_id}".encode()


class RedisThreadEvents:
    def __init__(self, client: aioredis.Redis, fanout: Fanout, local: MemoryBroker) -> None:
        self.client = client
        self.fanout = fanout
        self.local = local

    async def publish(self, thread_id: str, name: str, data: bytes) -> None:
        await self.local.publish_thread(thread_id, name, data)
        message = name.encode() + b"\n" + data
        await best_effort("thread.publish", partial(
            aio(self.client.publish), channel(thread_id), message), None, thread_id=thread_id)

    async def listen(self, thread_id: str, sink: ThreadSink) -> ThreadHandle:
        def on_message(raw: bytes) -> None:
            if raw == RESYNC:
                return  # lost while disconnected: live events are not replayed
            name, _, data = raw.partition(b"\n")
            sink(name.decode(), data)

        try:  # refused at once while the pub/sub connection is down
            await self.fanout.subscribe(channel(thread_id), on_message)
        except StoreUnavailable as exc:
            fell_back("thread.listen", exc, thread_id=thread_id)
            return await self.local.listen_thread(thread_id, sink)
        return on_message

    async def unlisten(self, thread_id: str, handle: ThreadHandle) -> None:
        # The handle is either the Redis wrapper or the local sink; dropping it from the
        # place it is not registered is a no-op.
        await self.local.unlisten_thread(thread_id, handle)
        await self.fanout.unsubscribe(channel(thread_id), handle)
