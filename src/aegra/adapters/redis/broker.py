"""EventBroker on Redis (seed 004 key layout), any instance serving any run's stream.

Keys: ``aegra:run:counter:{id}`` (event sequence), ``aegra:run:cache:{id}`` (replay
buffer of whole SSE frames), ``aegra:run:{id}`` (live channel), ``aegra:run:done:{id}``
(completion marker holding the final result, TTL 1 h), ``aegra:run:size:{id}`` (the
buffer's bytes) and ``aegra:run:batch:{id}`` (the last batch's token). Producers batch:
events emitted while a flush is in flight go out together in the next one. A flush is one
Lua call that numbers the batch, appends it to the buffer, refreshes the TTLs and
publishes it, so the buffer and the live channel can never disagree on order. Subscribers
subscribe first (confirmed), then read the buffer, then follow live, dropping sequence
numbers already sent: each event exactly once, in order. The heartbeater refreshes the
buffers' TTL for quiet runs (``touch``).

A flush that fails while the pub/sub fanout is healthy is retried: every subscriber,
local ones too, reads Redis then, so a batch that never reached it would be lost to all
of them, unseen (the counter does not advance, so nobody sees a gap). Each batch carries
a token (``{producer uuid}:{n}``, the same on every retry) and the script keeps the last
one applied in the batch key (set with the buffer's TTL by each append; ``touch`` and
``finish`` leave it, as it only matters for the second or so a retry takes, and ``reset``
too, as a new producer's tokens differ): a retry whose first try ran but lost its reply
returns the counter without appending or publishing again. Redis down altogether takes
the fanout down too: then the producer falls back at once, so a drain stays short.

The buffer keeps a run's newest ``max_events`` events and ``max_bytes`` bytes (at least
the newest event): the append script pops the oldest frames and keeps the byte count in
``aegra:run:size:{id}``. The counter minus the buffer's length is how many were dropped,
so the replay script finds where a joiner's sequence number sits in the list, and a joiner
asking for dropped events first gets a notice saying how many (``domain/replay.py``).

When Redis cannot be reached, the instance serves what it can: producers here also keep
the run in a local in-memory log, and subscriptions fall back to it. Redis errors are
mapped, and each of these fallbacks declared, in ``client.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import deque
from functools import partial

import msgspec
import redis.asyncio as aioredis
import trio
from redis.exceptions import ConnectionError as RedisConnectionError

from aegra import logs
from aegra.adapters.aio import aio
from aegra.adapters.memory.broker import MemoryBroker
from aegra.adapters.redis.client import best_effort, fell_back, mapped
from aegra.adapters.redis.fanout import RESYNC, Fanout
from aegra.adapters.redis.thread_events import RedisThreadEvents
from aegra.domain.errors import StoreUnavailable
from aegra.domain.ports import (
    Producer,
    RunResult,
    StreamEvent,
    Subscription,
    ThreadHandle,
    ThreadSink,
)
from aegra.domain.replay import dropped_notice

log = logs.get_logger("aegra.redis.broker")
DONE = b"!done"
BATCH = 256  # events per Lua call (Lua's unpack() has a stack limit)
RETRY_S = (0.05, 0.2, 0.5)  # pauses between a failed flush's retries (fanout healthy)

# KEYS: counter, cache, channel, size, batch. ARGV: run id, TTL, max events, max bytes,
# batch token, then (name, data) pairs. -> the counter after the batch.
_APPEND = """
if redis.call('GET', KEYS[5]) == ARGV[5] then
  return tonumber(redis.call('GET', KEYS[1]) or '0')
end
local n = (#ARGV - 5) / 2
local last = redis.call('INCRBY', KEYS[1], n)
local first = last - n + 1
local frames = {}
local bytes = 0
for i = 0, n - 1 do
  frames[i + 1] = 'event: ' .. ARGV[6 + 2 * i] .. '\\ndata: ' .. ARGV[7 + 2 * i] ..
                  '\\nid: ' .. ARGV[1] .. '_event_' .. (first + i) .. '\\n\\n'
  bytes = bytes + #frames[i + 1]
end
local len = redis.call('RPUSH', KEYS[2], unpack(frames))
local size = redis.call('INCRBY', KEYS[4], bytes)
local max_events, max_bytes = tonumber(ARGV[3]), tonumber(ARGV[4])
if len > max_events or size > max_bytes then
  while len > 1 and (len > max_events or size > max_bytes) do
    size = size - #redis.call('LPOP', KEYS[2])
    len = len - 1
  end
  redis.call('SET', KEYS[4], size)
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[4], ARGV[2])
redis.call('SET', KEYS[5], ARGV[5])
redis.call('EXPIRE', KEYS[5], ARGV[2])
redis.call('PUBLISH', KEYS[3], table.concat(frames))
return last
"""
# -> {dropped, frames after ARGV[1], done}. Clamped: wait_done asks for 2**62, which Lua
# would hand LRANGE as "4.6e+18".
_REPLAY = """
local len = redis.call('LLEN', KEYS[2])
local dropped = tonumber(redis.call('GET', KEYS[1]) or '0') - len
if dropped < 0 then dropped = 0 end
local start = tonumber(ARGV[1]) - dropped
if start < 0 then start = 0 end
if start > len then start = len end
return {dropped, redis.call('LRANGE', KEYS[2], start, -1), redis.call('EXISTS', KEYS[3])}
"""


def keys(run_id: str) -> tuple[str, str, str, str]:
    return (f"aegra:run:counter:{run_id}", f"aegra:run:cache:{run_id}",
            f"aegra:run:{run_id}", f"aegra:run:done:{run_id}")


def size_key(run_id: str) -> str:
    """Bytes held in the run's replay buffer (for the cap)."""
    return f"aegra:run:size:{run_id}"


def batch_key(run_id: str) -> str:
    """The token of the last batch appended (makes a retried append idempotent)."""
    return f"aegra:run:batch:{run_id}"


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
        self.token = uuid.uuid4().hex  # + a batch number: the batch's token
        self.batches = 0

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
            self.batches += 1
            try:
                await self.broker.append_retrying(self.run_id, batch,
                                                  f"{self.token}:{self.batches}")
            except StoreUnavailable as exc:
                fell_back("broker.publish", exc, run_id=self.run_id)
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
        frames, done, dropped = await self.broker.replay_counted(self.run_id, self.queued)
        events = [e for e in (parse(f) for f in frames) if e.seq > self.queued]
        notice = dropped_notice(self.run_id, self.queued, dropped + 1)
        return ([notice, *events] if notice is not None else events), done

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
                 max_lag: int = 2048, linger_s: float = 0.0, max_events: int = 10_000,
                 max_bytes: int = 16 * 1024 * 1024) -> None:
        self.client = client
        self.linger_s = linger_s  # RedisProducer._linger
        self.fanout = Fanout(client)
        self.retention_s = retention_s
        self.max_lag = max_lag
        self.max_events = max_events
        self.max_bytes = max_bytes
        # What this instance can serve alone.
        self.local = MemoryBroker(retention_s=300, max_events=max_events, max_bytes=max_bytes)
        self.threads = RedisThreadEvents(client, self.fanout, self.local)
        self._append = client.register_script(_APPEND)
        self._replay = client.register_script(_REPLAY)

    async def open(self) -> None:
        await self.fanout.open()

    async def close(self) -> None:
        await self.fanout.close()

    @property
    def healthy(self) -> bool:
        return self.fanout.healthy

    def producer(self, run_id: str) -> RedisProducer:
        return RedisProducer(self, run_id)

    async def append(self, run_id: str, flat: list[bytes], token: str | None = None) -> int:
        """Asyncio side: publish a batch; ``StoreUnavailable`` when Redis is away. A call
        repeating the last applied batch's ``token`` appends nothing (None: a new one)."""
        counter, cache, channel, _ = keys(run_id)
        with mapped("broker.publish", asyncio_side=True):
            return await self._append(  # type: ignore[no-any-return]
                keys=[counter, cache, channel, size_key(run_id), batch_key(run_id)],
                args=[run_id, self.retention_s, self.max_events, self.max_bytes,
                      token or uuid.uuid4().hex, *flat])

    async def append_retrying(self, run_id: str, flat: list[bytes], token: str) -> int:
        """Asyncio side: ``append``, retried (same token) while the fanout is healthy, as
        subscribers then read only Redis. A pooled connection gone stale (Redis
        restarted) or a read timeout fails one call; a real outage takes the fanout down
        too, so the caller falls back at once. The caller's later batches wait."""
        for pause in (*RETRY_S, None):
            try:
                return await self.append(run_id, flat, token)
            except StoreUnavailable:
                if pause is None or not self.healthy:
                    raise
            await asyncio.sleep(pause)
        raise AssertionError("unreachable")

    async def replay(self, run_id: str, after_seq: int) -> tuple[list[bytes], bool]:
        frames, done, _ = await self.replay_counted(run_id, after_seq)
        return frames, done

    async def replay_counted(self, run_id: str, after_seq: int
                             ) -> tuple[list[bytes], bool, int]:
        """(frames after ``after_seq``, run done, events dropped from the buffer's front);
        ``StoreUnavailable`` when Redis is away."""
        with mapped("broker.replay"):
            return await self._replay_counted(run_id, after_seq)

    @aio
    async def _replay_counted(self, run_id: str, after_seq: int
                              ) -> tuple[list[bytes], bool, int]:
        counter, cache, _, done = keys(run_id)
        for attempt in (1, 2):
            try:
                dropped, frames, finished = await self._replay(
                    keys=[counter, cache, done], args=[after_seq])
                return frames, bool(finished), int(dropped)
            except RedisConnectionError:
                # After Redis restarts, a pooled connection opened before the outage
                # fails once ("closed by server") and is dropped; the retry gets a new
                # one. A second failure is a real outage.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def subscribe(self, run_id: str, after_seq: int) -> Subscription:
        if not self.healthy:
            return await self.local.subscribe(run_id, after_seq)
        sub = RedisSubscription(self, run_id, after_seq, self.max_lag)
        try:
            await self.fanout.subscribe(sub.channel, sub._sink)
        except StoreUnavailable as exc:
            fell_back("broker.subscribe", exc, run_id=run_id)
            return await self.local.subscribe(run_id, after_seq)
        return sub

    @aio
    async def _finish(self, run_id: str, payload: bytes) -> None:
        counter, cache, channel, done = keys(run_id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(done, payload, ex=self.retention_s)
            pipe.expire(cache, self.retention_s)
            pipe.expire(counter, self.retention_s)
            pipe.expire(size_key(run_id), self.retention_s)
            pipe.publish(channel, DONE)
            await pipe.execute()

    async def drain(self, producer: Producer) -> None:
        """Ship what the producer still holds, so final events come after it."""
        await aio(producer.aclose)()

    async def finish(self, run_id: str, result: RunResult,
                     final: tuple[tuple[str, bytes], ...] = ()) -> None:
        await self.local.finish(run_id, result, final)

        async def publish() -> None:
            if final:
                flat = [part for name, data in final for part in (name.encode(), data)]
                await aio(self.append_retrying)(run_id, flat, uuid.uuid4().hex)
            await self._finish(run_id, msgspec.json.encode(result))
        await best_effort("broker.finish", publish, None, run_id=run_id)

    async def reset(self, run_id: str) -> None:
        await self.local.reset(run_id)
        await best_effort("broker.reset", partial(aio(self.client.delete), keys(run_id)[3]),
                          None, run_id=run_id)

    async def result(self, run_id: str) -> tuple[bool, RunResult | None]:
        raw = await best_effort("broker.result", partial(aio(self.client.get), keys(run_id)[3]),
                                None, run_id=run_id)
        if raw is None:
            return await self.local.result(run_id)
        return True, msgspec.json.decode(raw)

    async def wait_done(self, run_id: str) -> RunResult | None:
        """Pushed, not polled: the done marker arrives on the run's channel."""
        sub = await self.subscribe(run_id, 1 << 62)  # no replay wanted, only the end
        try:
            async for _ in sub:
                pass
        except StoreUnavailable as exc:  # Redis went away under the subscription
            fell_back("broker.wait", exc, run_id=run_id)
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
        counter, _, _, done = keys(run_id)
        return bool(await best_effort("broker.has", partial(aio(self.client.exists), counter,
                                                            done), 0, run_id=run_id))

    async def touch(self, run_ids: list[str]) -> None:
        """Keep the buffers of live runs from expiring, however quiet the run is."""
        @aio
        async def _touch() -> None:
            async with self.client.pipeline(transaction=False) as pipe:
                for run_id in run_ids:
                    counter, cache, _, _ = keys(run_id)
                    pipe.expire(cache, self.retention_s)
                    pipe.expire(counter, self.retention_s)
                    pipe.expire(size_key(run_id), self.retention_s)
                await pipe.execute()
        await best_effort("broker.touch", _touch, None, runs=len(run_ids))

    # Thread-level events: thread_events.py.
    async def publish_thread(self, thread_id: str, name: str, data: bytes) -> None:
        await self.threads.publish(thread_id, name, data)

    async def listen_thread(self, thread_id: str, sink: ThreadSink) -> ThreadHandle:
        return await self.threads.listen(thread_id, sink)

    async def unlisten_thread(self, thread_id: str, handle: ThreadHandle) -> None:
        await self.threads.unlisten(thread_id, handle)
