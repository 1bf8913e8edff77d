"""One Redis pub/sub connection per instance, fanned out to local subscribers.

A thousand open streams must not mean a thousand Redis connections: channels are
subscribed on demand on one shared connection, and one asyncio reader task hands each
message to the sinks registered for its channel (plain callbacks: the reader runs in
Trio's thread, so a sink may ``send_nowait`` into a Trio memory channel). ``subscribe``
returns only after Redis confirmed the subscription, which is what makes
subscribe-then-replay exact. When the connection drops, the reader reconnects,
resubscribes every channel and tells every sink to resynchronise from the replay buffer.
``subscribe`` raises ``StoreUnavailable`` when Redis is away (errors are mapped in
``client.py``); the caller picks its fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from functools import partial
from typing import Any

import redis.asyncio as aioredis
import trio

from aegra import logs
from aegra.adapters.aio import aio
from aegra.adapters.redis.client import best_effort, fell_back, mapped, unavailable
from aegra.adapters.sinks import SinkRegistry
from aegra.domain.errors import StoreUnavailable

log = logs.get_logger("aegra.redis.fanout")
RESYNC = b"!resync"  # delivered to every sink after a reconnect
Sink = Callable[[bytes], None]


class Fanout:
    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self.confirmed: dict[bytes, trio.Event] = {}
        # A channel's confirmation goes with its last sink: a later subscribe waits anew.
        self.sinks: SinkRegistry[bytes, bytes] = SinkRegistry(
            on_drop=lambda channel: self.confirmed.pop(channel, None))
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
            with contextlib.suppress(asyncio.CancelledError):  # it never raises otherwise
                await task
            if self.pubsub is not None:
                await self.pubsub.aclose()
        await _close()

    async def _connect(self) -> None:
        old, self.pubsub = self.pubsub, None
        if old is not None:
            # The old connection is gone already; closing it only frees the socket.
            with contextlib.suppress(StoreUnavailable), mapped("fanout.read",
                                                               asyncio_side=True):
                await old.aclose()
        self.pubsub = self.client.pubsub()
        # Always hold one subscription so the connection and its reader stay up.
        await self.pubsub.subscribe(b"aegra:fanout", *self.sinks.channels())

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
                                self.sinks.broadcast(RESYNC)
                        event = self.confirmed.get(channel)
                        if event is not None:
                            event.set()
                    elif kind == "message":
                        self.sinks.deliver(channel, message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001  this loop is the reader's restart policy
                self._lost(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    def _lost(self, exc: Exception) -> None:
        """The "fanout.read" fallback. Redis being away is logged once per outage; anything
        else is a bug, logged with its traceback, and the reader still reconnects, because
        every stream and the cancel bus of this instance hang on it."""
        error = unavailable("fanout.read", exc, asyncio_side=True)
        if error is None:
            log.error("redis.pubsub_reader_failed", error=repr(exc), exc_info=exc)
        elif self.healthy:
            fell_back("fanout.read", error, event="redis.pubsub_lost")
        self.healthy = False

    async def subscribe(self, channel: bytes, sink: Sink, timeout_s: float = 5.0) -> None:
        """Register ``sink`` and return once Redis confirmed the channel subscription;
        ``StoreUnavailable`` (and ``sink`` not registered) when it did not."""
        # Forgotten when this fails (the caller falls back) or is cancelled: a sink left
        # here would outlive it, and every retry of the cancel listener would add one.
        with self.sinks.registering(channel, sink) as first:
            event = self.confirmed.setdefault(channel, trio.Event())
            if not first and event.is_set():
                return
            pubsub = self.pubsub
            if pubsub is None or not self.healthy:
                raise StoreUnavailable("Redis unavailable (fanout.subscribe): "
                                       "pub/sub is not connected")
            with mapped("fanout.subscribe"):
                await aio(pubsub.subscribe)(channel)
            with trio.move_on_after(timeout_s):
                await event.wait()
            if not event.is_set():
                raise StoreUnavailable(f"Redis unavailable (fanout.subscribe): not "
                                       f"confirmed within {timeout_s:g}s")

    async def unsubscribe(self, channel: bytes, sink: Sink) -> None:
        if not self.sinks.forget(channel, sink):
            return
        pubsub = self.pubsub
        if pubsub is not None and self.healthy:
            await best_effort("fanout.unsubscribe", partial(aio(pubsub.unsubscribe), channel),
                              None, channel=channel.decode(errors="replace"))
