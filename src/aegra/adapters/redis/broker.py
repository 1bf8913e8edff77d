"""EventBroker on Redis (seed 004 key layout), any instance serving any run's stream.

Keys: ``aegra:run:counter:{id}`` (event sequence), ``aegra:run:cache:{id}`` (replay
buffer of whole SSE frames), ``aegra:run:{id}`` (live channel), ``aegra:run:done:{id}``
(completion marker holding the final result, TTL 1 h). Producers batch: events emitted
while a flush is in flight go out together in the next one. A flush is one Lua call that
numbers the batch, appends it to the buffer, refreshes the TTLs and publishes it, so the
buffer and the live channel can never disagree on order. Subscribers subscribe first
(confirmed), then read the buffer, then follow live, dropping sequence numbers already
sent: each event exactly once, in order. The heartbeater refreshes the buffers' TTL for
quiet runs (``touch``).

When Redis cannot be reached, the instance serves what it can: producers here also keep
the run in a local in-memory log, and subscriptions fall back to it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

import msgspec
import redis.asyncio as aioredis
import trio
from redis.exceptions import ConnectionError as RedisConnectionError

from aegra import logs
from aegra.adapters.aio import aio
from aegra.adapters.memory.broker import MemoryBroker
from aegra.adapters.redis.fanout import RESYNC, Fanout
from aegra.domain.ports import StreamEvent

log = logs.get_logger("aegra.redis.broker")
DONE = b"!done"
BATCH = 256  # events per Lua call (Lua's unpack() has a stack limit)

_APPEND = """
local n = (#ARGV - 2) / 2
local last = redis.call('INCRBY', KEYS[1], n)
local first = last - n + 1
local frames = {}
for i = 0, n - 1 do
  frames[i + 1] = 'event: ' .. ARGV[3 + 2 * i] .. '\\ndata: ' .. ARGV[4 + 2 * i] ..
                  '\\nid: ' .. ARGV[1] .. '_event_' .. (first + i) .. '\\n\\n'
end
redis.call('RPUSH', KEYS[2], unpack(frames))
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('PUBLISH', KEYS[3], table.concat(frames))
return last
"""


def keys(run_id: str) -> tuple[str, str, str, str]:
    return (f"aegra:run:counter:{run_id}", f"aegra:run:cache:{run_id}",
            f"aegra:run:{run_id}", f"aegra:run:done:{run_id}")


def parse(frame: bytes) -> StreamEvent:
    name = frame[7:frame.index(b"\n")].decode()
    seq = int(frame[frame.rindex(b"_event_") + 7:].strip())
    return StreamEvent(seq, name, frame if frame.endswith(b"\n\n") else frame + b"\n\n")


def split(blob: bytes) -> list[StreamEvent]:
    return [parse(part + b"\n\n") for part in blob.split(b"\n\n") if part]


class RedisProducer:
    """Asyncio-side producer: ``emit`` is sync and cheap; a flush task ships batches."""

    def __init__(self, broker: RedisBroker, run_id: str) -> None:
        self.broker = broker
        self.run_id = run_id
        self.pending: list[bytes] = []
        self.flushing: asyncio.Task[None] | None = None
        self.closing: asyncio.Event | None = None  # set by aclose: stop lingering

    def emit(self, name: str, data: bytes) -> None:
        """Called on the asyncio side (the run's task) only."""
        self.broker.local.emit(self.run_id, name, data)
        self.pending.extend((name.encode(), data))
        if self.flushing is None or self.flushing.done():
            self.flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self.pending:
            await self._linger()
            batch, self.pending = self.pending[: 2 * BATCH], self.pending[2 * BATCH:]
            try:
                await self.broker.append(self.run_id, batch)
            except Exception as exc:  # noqa: BLE001  Redis down: local log still serves
                log.warning("redis.publish_failed", run_id=self.run_id, error=repr(exc))
                self.pending.clear()

    async def _linger(self) -> None:
        """Let a burst gather before each Lua call. Under load a run emits an event every
        millisecond or so while a call takes a few: without a pause every batch held
        about 3 events, and the per-call cost (a redis-py round trip through the bridge,
        a pub/sub message for every subscriber, an SSE write) was paid per 3 events.
        The run's final drain cuts the pause short."""
        if self.broker.linger_s <= 0:
            return
        if self.closing is None:
            self.closing = asyncio.Event()
        if self.closing.is_set():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.broker.linger_s):
                await self.closing.wait()

    async def aclose(self) -> None:
        if self.closing is None:
            self.closing = asyncio.Event()
        self.closing.set()
        while self.flushing is not None and not self.flushing.done():
            await asyncio.shield(self.flushing)


class RedisSubscription:
    def __init__(self, broker: RedisBroker, run_id: str, after_seq: int, max_lag: int) -> None:
        self.broker = broker
        self.run_id = run_id
        self.last = after_seq
        self.queued = after_seq  # highest sequence number handed to _pending
        self.channel = keys(run_id)[2].encode()
        self._send, self._recv = trio.open_memory_channel[bytes](max_lag)
        self._pending: deque[StreamEvent] = deque()
        self._replay_needed = True  # the first step: read the buffer after subscribing
        self._end_seen = False
        self._finished = False
        self.lagged = False

    def _sink(self, data: bytes) -> None:
        try:
            self._send.send_nowait(data)
        except trio.WouldBlock:
            self.lagged = True
            self._send.close()
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    async def _replay(self) -> tuple[list[StreamEvent], bool]:
        frames, done = await self.broker.replay(self.run_id, self.queued)
        return [e for e in (parse(f) for f in frames) if e.seq > self.queued], done

    def _queue(self, events: list[StreamEvent]) -> None:
        for event in events:
            if event.seq > self.queued:
                self.queued = event.seq
                self._pending.append(event)

    def __aiter__(self) -> RedisSubscription:
        return self

    async def __anext__(self) -> StreamEvent:
        """Cancel-safe: the SSE writer times each wait out for its keepalive, so a
        cancelled call must lose nothing. All state lives on the object (an async
        generator would be finished by the cancellation), and a step that must happen
        (the first replay, the replay after a resync or the end marker) is flagged
        before its await and retried by the next call if it was cancelled."""
        while True:
            if self._pending:
                event = self._pending.popleft()
                self.last = event.seq
                return event
            if self._finished:
                raise StopAsyncIteration
            if self._replay_needed or self._end_seen:
                backlog, done = await self._replay()
                self._replay_needed = False
                self._queue(backlog)
                if done or self._end_seen:
                    self._finished = True
                continue
            try:
                data = await self._recv.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                self._finished = True  # cut off for lagging: the client resumes by id
                continue
            self._take(data)

    def _take(self, data: bytes) -> None:
        if data == DONE:
            # Events published before the marker are already here; anything the buffer
            # holds beyond them (a resync race) is read once more.
            self._end_seen = True
        elif data == RESYNC:
            self._replay_needed = True
        else:
            self._queue(split(data))

    def receive_nowait(self) -> StreamEvent:
        """The next event if it is already here, else ``trio.WouldBlock``: lets the SSE
        writer send the rest of a published batch in the same write. Anything that needs
        an await (a replay, the end) is flagged and left to the next ``__anext__``."""
        while True:
            if self._pending:
                event = self._pending.popleft()
                self.last = event.seq
                return event
            if self._finished or self._replay_needed or self._end_seen:
                raise trio.WouldBlock
            self._take(self._recv.receive_nowait())  # WouldBlock; EndOfChannel if cut off

    async def aclose(self) -> None:
        self._send.close()
        await self.broker.fanout.unsubscribe(self.channel, self._sink)


class RedisBroker:
    def __init__(self, client: aioredis.Redis, *, retention_s: int = 3600,
                 max_lag: int = 2048, linger_s: float = 0.0) -> None:
        self.client = client
        self.linger_s = linger_s  # RedisProducer._linger
        self.fanout = Fanout(client)
        self.retention_s = retention_s
        self.max_lag = max_lag
        self.local = MemoryBroker(retention_s=300)  # what this instance can serve alone
        self._append = client.register_script(_APPEND)

    async def open(self) -> None:
        await self.fanout.open()

    async def close(self) -> None:
        await self.fanout.close()

    @property
    def healthy(self) -> bool:
        return self.fanout.healthy

    def producer(self, run_id: str) -> RedisProducer:
        return RedisProducer(self, run_id)

    async def append(self, run_id: str, flat: list[bytes]) -> int:
        counter, cache, channel, _ = keys(run_id)
        return await self._append(keys=[counter, cache, channel],  # type: ignore[no-any-return]
                                  args=[run_id, self.retention_s, *flat])

    @aio
    async def replay(self, run_id: str, after_seq: int) -> tuple[list[bytes], bool]:
        _, cache, _, done = keys(run_id)
        for attempt in (1, 2):
            try:
                async with self.client.pipeline(transaction=False) as pipe:
                    pipe.lrange(cache, after_seq, -1)
                    pipe.exists(done)
                    frames, finished = await pipe.execute()
                return frames, bool(finished)
            except RedisConnectionError:
                # After Redis restarts, a pooled connection opened before the outage
                # fails once ("closed by server") and is dropped; the retry gets a new
                # one. A second failure is a real outage.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def subscribe(self, run_id: str, after_seq: int) -> Any:
        if not self.healthy:
            return await self.local.subscribe(run_id, after_seq)
        sub = RedisSubscription(self, run_id, after_seq, self.max_lag)
        try:
            await self.fanout.subscribe(sub.channel, sub._sink)
        except (ConnectionError, trio.TooSlowError, OSError):
            return await self.local.subscribe(run_id, after_seq)
        return sub

    @aio
    async def _finish(self, run_id: str, payload: bytes) -> None:
        counter, cache, channel, done = keys(run_id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(done, payload, ex=self.retention_s)
            pipe.expire(cache, self.retention_s)
            pipe.expire(counter, self.retention_s)
            pipe.publish(channel, DONE)
            await pipe.execute()

    async def drain(self, producer: RedisProducer) -> None:
        """Ship what the producer still holds, so final events come after it."""
        await aio(producer.aclose)()

    async def finish(self, run_id: str, result: Any,
                     final: tuple[tuple[str, bytes], ...] = ()) -> None:
        await self.local.finish(run_id, result, final)
        try:
            if final:
                flat = [part for name, data in final for part in (name.encode(), data)]
                await aio(self.append)(run_id, flat)
            await self._finish(run_id, msgspec.json.encode(result))
        except Exception as exc:  # noqa: BLE001  waiters elsewhere fall back to polling
            log.warning("redis.finish_failed", run_id=run_id, error=repr(exc))

    async def reset(self, run_id: str) -> None:
        await self.local.reset(run_id)
        try:
            await aio(self.client.delete)(keys(run_id)[3])
        except Exception:  # noqa: BLE001
            pass

    async def result(self, run_id: str) -> tuple[bool, Any]:
        try:
            raw = await aio(self.client.get)(keys(run_id)[3])
        except Exception:  # noqa: BLE001
            return await self.local.result(run_id)
        if raw is None:
            return await self.local.result(run_id)
        return True, msgspec.json.decode(raw)

    async def wait_done(self, run_id: str) -> Any:
        """Pushed, not polled: the done marker arrives on the run's channel."""
        sub = await self.subscribe(run_id, 1 << 62)  # no replay wanted, only the end
        try:
            async for _ in sub:
                pass
        except Exception as exc:  # noqa: BLE001  Redis went away under the subscription
            log.warning("redis.wait_failed", run_id=run_id, error=repr(exc))
            await trio.sleep(1.0)  # the caller re-checks the database; no hot loop
            return None
        finally:
            with trio.move_on_after(2, shield=True):
                await sub.aclose()
        done, result = await self.result(run_id)
        return result if done else None

    async def has(self, run_id: str) -> bool:
        if self.local.known(run_id):
            return True
        try:
            counter, _, _, done = keys(run_id)
            return bool(await aio(self.client.exists)(counter, done))
        except Exception:  # noqa: BLE001
            return False

    async def touch(self, run_ids: list[str]) -> None:
        """Keep the buffers of live runs from expiring, however quiet the run is."""
        @aio
        async def _touch() -> None:
            async with self.client.pipeline(transaction=False) as pipe:
                for run_id in run_ids:
                    counter, cache, _, _ = keys(run_id)
                    pipe.expire(cache, self.retention_s)
                    pipe.expire(counter, self.retention_s)
                await pipe.execute()
        try:
            await _touch()
        except Exception as exc:  # noqa: BLE001
            log.warning("redis.touch_failed", error=repr(exc))
