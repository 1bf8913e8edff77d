"""One Redis pub/sub connection per instance, fanned out to local subscribers.

A thousand open streams must not mean a thousand Redis connections: channels are
subscribed on demand on one shared connection, and one asyncio reader task hands each
message to the sinks registered for its channel (plain callbacks: the reader runs in
Trio's thread, so a sink may ``send_nowait`` into a Trio memory channel). ``subscribe``
returns only after Redis confirmed the subscription, which is what makes
subscribe-then-replay exact. When the connection drops, the reader reconnects,
resubscribes every channel and tells every sink to resynchronise from the replay buffer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
import trio

from aegra import logs
from aegra.adapters.aio import aio

log = logs.get_logger("aegra.redis.fanout")
RESYNC = b"!resync"  # delivered to every sink after a reconnect
Sink = Callable[[bytes], None]


class Fanout:
    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self.sinks: dict[bytes, set[Sink]] = {}
        self.confirmed: dict[bytes, trio.Event] = {}
        self.pubsub: Any = None
        self.healthy = False
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        @aio
        async def _open() -> None:
            self._task = asyncio.get_running_loop().create_task(self._read_forever())
        await _open()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return

        @aio
        async def _close() -> None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001  closing anyway
                pass
            if self.pubsub is not None:
                await self.pubsub.aclose()
        await _close()

    async def _connect(self) -> None:
        if self.pubsub is not None:
            try:
                await self.pubsub.aclose()
            except Exception:  # noqa: BLE001  the old connection is gone already
                pass
        self.pubsub = self.client.pubsub()
        # Always hold one subscription so the connection and its reader stay up.
        await self.pubsub.subscribe(b"aegra:fanout", *self.sinks.keys())

    async def _read_forever(self) -> None:
        backoff = 0.1
        while True:
            try:
                await self._connect()
                resync = self.healthy is False and bool(self.sinks)
                async for message in self.pubsub.listen():
                    kind = message["type"]
                    channel = message["channel"]
                    if kind == "subscribe":
                        if channel == b"aegra:fanout":
                            self.healthy = True
                            backoff = 0.1
                            if resync:
                                resync = False
                                self._broadcast(RESYNC)
                        event = self.confirmed.get(channel)
                        if event is not None:
                            event.set()
                    elif kind == "message":
                        for sink in list(self.sinks.get(channel, ())):
                            sink(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001  any Redis failure: reconnect
                if self.healthy:
                    log.warning("redis.pubsub_lost", error=repr(exc))
                self.healthy = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    def _broadcast(self, data: bytes) -> None:
        for sinks in list(self.sinks.values()):
            for sink in list(sinks):
                sink(data)

    async def subscribe(self, channel: bytes, sink: Sink, timeout_s: float = 5.0) -> None:
        """Register ``sink`` and return once Redis confirmed the channel subscription."""
        sinks = self.sinks.setdefault(channel, set())
        sinks.add(sink)
        if len(sinks) > 1 and self.confirmed.get(channel, trio.Event()).is_set():
            return
        event = self.confirmed.setdefault(channel, trio.Event())
        pubsub = self.pubsub
        if pubsub is None or not self.healthy:
            raise ConnectionError("redis pub/sub is not connected")
        await aio(pubsub.subscribe)(channel)
        with trio.fail_after(timeout_s):
            await event.wait()

    async def unsubscribe(self, channel: bytes, sink: Sink) -> None:
        sinks = self.sinks.get(channel)
        if sinks is None:
            return
        sinks.discard(sink)
        if sinks:
            return
        del self.sinks[channel]
        self.confirmed.pop(channel, None)
        pubsub = self.pubsub
        if pubsub is not None and self.healthy:
            try:
                await aio(pubsub.unsubscribe)(channel)
            except Exception:  # noqa: BLE001  a lost connection unsubscribes for us
                pass
