"""The EventBroker and Subscription contract, run on the in-memory broker, on Redis and
on PostgreSQL (the channel without Redis).

On Redis the run is published by one broker and read through another (two clients, two
pub/sub connections), as when one instance executes a run and another serves its
stream: what the in-memory broker promises within one process, Redis must keep across
instances. PostgreSQL likewise: two brokers, each its own pool and LISTEN connection.
Run ids are fresh uuids, so a shared Redis server is safe.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
import redis.asyncio as aioredis
import trio
import trio.testing

from aegra.adapters import aio
from aegra.adapters.memory.broker import MemoryBroker
from aegra.adapters.postgres import migrate
from aegra.adapters.postgres.broker import PgBroker
from aegra.adapters.postgres.listen import PgListener
from aegra.adapters.postgres.pool import PgPool
from aegra.adapters.redis.broker import RedisBroker
from aegra.domain.replay import DROPPED
from aegra.domain.runs import sse_frame

DONE = {"status": "success", "values": {"n": 1}, "error": None}


class Pair:
    """``writer`` publishes and finishes runs; ``reader`` serves streams and results."""

    def __init__(self, writer: Any, reader: Any) -> None:
        self.writer = writer
        self.reader = reader


@pytest.fixture(params=["memory", "redis", "postgres"])
def backend(request: pytest.FixtureRequest) -> Any:
    """``open_pair(**broker_kwargs)``: an async context manager yielding a ``Pair``."""
    if request.param == "postgres":
        return partial(open_postgres, request.getfixturevalue("database_url"))
    if request.param == "memory":
        @asynccontextmanager
        async def open_memory(**kw: Any) -> AsyncIterator[Pair]:
            async with aio.open_loop():  # producers emit on the asyncio side
                broker = MemoryBroker(**kw)
                yield Pair(broker, broker)
        return open_memory
    url = request.getfixturevalue("redis_url")

    @asynccontextmanager
    async def open_redis(**kw: Any) -> AsyncIterator[Pair]:
        async with aio.open_loop():
            brokers = [RedisBroker(await aio.call(_client, url), retention_s=60, **kw)
                       for _ in range(2)]
            for broker in brokers:
                await broker.open()
            try:
                with trio.fail_after(10):
                    # ``healthy`` is a plain flag the pub/sub reader sets once connected.
                    while not all(b.healthy for b in brokers):  # noqa: ASYNC110
                        await trio.sleep(0.01)
                yield Pair(*brokers)
            finally:
                for broker in brokers:
                    await broker.close()
                    await aio.call(broker.client.aclose)
    return open_redis


@asynccontextmanager
async def open_postgres(dsn: str, **kw: Any) -> AsyncIterator[Pair]:
    """Two processes' brokers on one database, each its own pool and LISTEN connection.
    The safety poll is far beyond the test: only NOTIFY can wake a subscriber in time."""
    migrate.ensure_migrated(dsn)
    async with aio.open_loop():
        pools = [PgPool(dsn, min_size=1, max_size=3) for _ in range(2)]
        listeners = [PgListener(dsn) for _ in range(2)]
        brokers = [PgBroker(p, li, retention_s=60, poll_s=3600, **kw)
                   for p, li in zip(pools, listeners, strict=True)]
        try:
            for pool, listener, broker in zip(pools, listeners, brokers, strict=True):
                await pool.open()
                await listener.open()
                await broker.open()
            yield Pair(*brokers)
        finally:
            for pool, listener, broker in zip(pools, listeners, brokers, strict=True):
                await broker.close()
                await listener.close()
                await pool.close()


async def _client(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(url, socket_connect_timeout=2)


def rid() -> str:
    return str(uuid.uuid4())


def data(name: str, i: int) -> bytes:
    return b'{"name":"%s","i":%d}' % (name.encode(), i)


async def emit(broker: Any, run_id: str, names: list[str], start: int = 0) -> None:
    """Publish through a producer on the asyncio side, as a run does, and drain it."""
    producer = broker.producer(run_id)

    async def go() -> None:
        for i, name in enumerate(names, start):
            producer.emit(name, data(name, i))
        await producer.aclose()
    await aio.call(go)


async def collect(sub: Any) -> list[tuple[int, str, bytes]]:
    try:
        return [(event.seq, event.name, event.frame) async for event in sub]
    finally:
        await sub.aclose()


async def test_replay_from_a_seq_then_live_then_the_end(backend: Any) -> None:
    async with backend() as pair:
        run_id = rid()
        await emit(pair.writer, run_id, ["metadata", "values", "values"])
        results: dict[int, list[tuple[int, str, bytes]]] = {}

        async def follow(after: int) -> None:
            results[after] = await collect(await pair.reader.subscribe(run_id, after))

        with trio.fail_after(15):
            async with trio.open_nursery() as nursery:
                for after in (0, 2):
                    nursery.start_soon(follow, after)
                # Subscribed (or about to be): either way each event comes exactly once.
                await trio.testing.wait_all_tasks_blocked()
                await emit(pair.writer, run_id, ["updates", "custom"], start=3)
                await pair.writer.finish(run_id, DONE, (("end", b'{"status":"success"}'),))
        names = ["metadata", "values", "values", "updates", "custom", "end"]
        payloads = [data(n, i) for i, n in enumerate(names[:-1])] + [b'{"status":"success"}']
        everything = [(seq, name, sse_frame(run_id, seq, name, payload))
                      for seq, (name, payload) in enumerate(zip(names, payloads, strict=True),
                                                            start=1)]
        # Each event exactly once, in order, as the very frame the spec defines.
        assert results[0] == everything
        assert results[2] == everything[2:]


async def test_a_finished_run_replays_from_any_seq_and_ends(backend: Any) -> None:
    async with backend() as pair:
        run_id = rid()
        await emit(pair.writer, run_id, ["metadata", "values", "values"])
        await pair.writer.finish(run_id, DONE, (("end", b"{}"),))
        with trio.fail_after(10):
            assert [s for s, _, _ in await collect(await pair.reader.subscribe(run_id, 0))] \
                == [1, 2, 3, 4]
            assert [n for _, n, _ in await collect(await pair.reader.subscribe(run_id, 2))] \
                == ["values", "end"]
            assert await collect(await pair.reader.subscribe(run_id, 4)) == []
            assert await collect(await pair.reader.subscribe(run_id, 99)) == []


async def test_result_has_and_wait_done(backend: Any) -> None:
    async with backend() as pair:
        run_id = rid()
        assert await pair.reader.has(run_id) is False
        assert await pair.reader.result(run_id) == (False, None)
        await emit(pair.writer, run_id, ["metadata"])
        assert await pair.reader.has(run_id) is True
        assert await pair.reader.result(run_id) == (False, None)  # live, not done
        waited: list[Any] = []

        async def wait() -> None:
            waited.append(await pair.reader.wait_done(run_id))

        with trio.fail_after(15):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(wait)
                await trio.testing.wait_all_tasks_blocked()
                assert waited == []
                await pair.writer.finish(run_id, DONE)
            assert waited == [DONE]
            assert await pair.reader.result(run_id) == (True, DONE)
            assert await pair.reader.wait_done(run_id) == DONE  # already done: at once


async def test_reset_makes_a_finished_run_live_again_and_numbering_continues(
        backend: Any) -> None:
    async with backend() as pair:
        run_id = rid()
        await emit(pair.writer, run_id, ["metadata", "values"])
        await pair.writer.finish(run_id, {"status": "interrupted"})
        assert await pair.reader.result(run_id) == (True, {"status": "interrupted"})
        await pair.writer.reset(run_id)  # requeued: it will execute again
        assert await pair.reader.result(run_id) == (False, None)
        got: list[list[tuple[int, str, bytes]]] = []

        async def follow(after: int) -> None:
            got.append(await collect(await pair.reader.subscribe(run_id, after)))

        with trio.fail_after(15):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(follow, 2)
                await trio.testing.wait_all_tasks_blocked()
                await emit(pair.writer, run_id, ["metadata"], start=2)
                await pair.writer.finish(run_id, DONE, (("end", b"{}"),))
        assert [(s, n) for s, n, _ in got[0]] == [(3, "metadata"), (4, "end")]
        assert await pair.reader.result(run_id) == (True, DONE)


async def test_a_capped_buffer_keeps_the_newest_and_says_what_it_dropped(
        backend: Any) -> None:
    async with backend(max_events=3) as pair:
        run_id = rid()
        await emit(pair.writer, run_id, [f"e{i}" for i in range(5)])
        await pair.writer.finish(run_id, DONE)
        with trio.fail_after(10):
            events = await collect(await pair.reader.subscribe(run_id, 0))
        assert [(s, n) for s, n, _ in events] == [(2, DROPPED), (3, "e2"), (4, "e3"),
                                                  (5, "e4")]
        assert b'"dropped":2' in events[0][2] and b'"first_seq":3' in events[0][2]
        # Resuming from the notice's id gets the kept events without a second notice.
        with trio.fail_after(10):
            again = await collect(await pair.reader.subscribe(run_id, 2))
        assert [s for s, _, _ in again] == [3, 4, 5]


class ThreadListener:
    """A thread-level sink (sync, as the port calls it) that a test can await."""

    def __init__(self) -> None:
        self.send, self.recv = trio.open_memory_channel[tuple[str, bytes]](100)
        self.got: list[tuple[str, bytes]] = []

    def sink(self, name: str, data: bytes) -> None:
        self.got.append((name, data))
        self.send.send_nowait((name, data))

    async def next(self) -> tuple[str, bytes]:
        with trio.fail_after(10):
            return await self.recv.receive()


async def test_thread_events_reach_every_listener_in_order_until_it_stops(
        backend: Any) -> None:
    """What a state write on one instance sends the thread streams on another: live, in
    publishing order, only to the thread's own listeners, nothing after unlisten."""
    async with backend() as pair:
        thread, other = rid(), rid()
        a, b, elsewhere = ThreadListener(), ThreadListener(), ThreadListener()
        await pair.writer.publish_thread(thread, "state_update", b"0")  # nobody listens
        handle_a = await pair.reader.listen_thread(thread, a.sink)
        handle_b = await pair.reader.listen_thread(thread, b.sink)
        handle_x = await pair.reader.listen_thread(other, elsewhere.sink)
        await pair.writer.publish_thread(thread, "state_update", b'{"n":1}')
        await pair.writer.publish_thread(thread, "custom", b"2")
        for listener in (a, b):
            assert [await listener.next(), await listener.next()] == [
                ("state_update", b'{"n":1}'), ("custom", b"2")]
        await pair.reader.unlisten_thread(thread, handle_a)
        await pair.writer.publish_thread(thread, "state_update", b"3")
        await pair.writer.publish_thread(other, "state_update", b"x")
        assert await b.next() == ("state_update", b"3")
        assert await elsewhere.next() == ("state_update", b"x")
        # One connection delivers in publishing order: had ``a`` still listened, "3"
        # would have reached it before "x" reached ``elsewhere``.
        assert len(a.got) == 2 and elsewhere.got == [("state_update", b"x")]
        await pair.reader.unlisten_thread(thread, handle_b)
        await pair.reader.unlisten_thread(other, handle_x)
