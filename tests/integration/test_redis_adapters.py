"""Ring 2: the Redis adapters against a real redis-server (and PostgreSQL for fallback)."""

from __future__ import annotations

import psycopg
import pytest
import redis.asyncio as aioredis
import trio

from aegra.adapters import aio
from aegra.adapters.postgres import migrate
from aegra.adapters.postgres.pool import PgPool
from aegra.adapters.redis.broker import RedisBroker, keys, parse
from aegra.adapters.redis.cancel import RedisCancelBus
from aegra.adapters.redis.queue import JOBS, RedisQueue


async def _client(url):
    @aio.aio
    async def make():
        return aioredis.Redis.from_url(url, socket_connect_timeout=1)
    return await make()


async def _open_broker(client):
    """A RedisBroker whose pub/sub connection is up."""
    broker = RedisBroker(client)
    await broker.open()
    with trio.fail_after(5):
        while not broker.healthy:
            await trio.sleep(0.01)
    return broker


async def _emit(producer, names):
    async def go():
        for name in names:
            producer.emit(name, b'{"n":"%s"}' % name.encode())
        await producer.aclose()
    await aio.call(go)


async def collect(sub, into):
    async for event in sub:
        into.append((event.seq, event.name))


async def test_replay_after_last_event_id_then_live_exactly_once(private_redis):
    async with aio.open_loop():
        client = await _client(private_redis.url)
        broker = RedisBroker(client, retention_s=60)
        await broker.open()
        with trio.fail_after(5):
            while not broker.healthy:
                await trio.sleep(0.01)
        producer = broker.producer("run1")
        await _emit(producer, ["metadata", "values", "values", "updates", "values"])
        got: list[tuple[int, str]] = []
        sub = await broker.subscribe("run1", 2)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(collect, sub, got)
            await _emit(producer, ["values", "custom"])
            await broker.finish("run1", {"status": "success"},
                                (("end", b'{"status":"success"}'),))
        await sub.aclose()
        assert got == [(3, "values"), (4, "updates"), (5, "values"), (6, "values"),
                       (7, "custom"), (8, "end")]
        assert await broker.result("run1") == (True, {"status": "success"})
        assert await broker.has("run1") and not await broker.has("nope")
        # A finished run replays whole, then ends at once.
        replay: list[tuple[int, str]] = []
        late = await broker.subscribe("run1", 0)
        await collect(late, replay)
        await late.aclose()
        assert [s for s, _ in replay] == list(range(1, 9))
        ttl = await aio.call(client.ttl, keys("run1")[1])
        assert 0 < ttl <= 60
        await broker.close()


async def test_concurrent_publishing_while_subscribing_loses_and_repeats_nothing(
        private_redis):
    async with aio.open_loop():
        client = await _client(private_redis.url)
        broker = await _open_broker(client)
        producer = broker.producer("run2")
        results: list[list[int]] = []

        async def subscriber(after):
            got: list[tuple[int, str]] = []
            sub = await broker.subscribe("run2", after)
            await collect(sub, got)
            await sub.aclose()
            results.append([s for s, _ in got])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(_emit, producer, [f"e{i}" for i in range(300)])
            for after in (0, 5, 50, 0):
                nursery.start_soon(subscriber, after)
                await trio.sleep(0)
            await trio.sleep(0.3)
            await _emit(producer, [f"f{i}" for i in range(100)])
            await broker.finish("run2", {"status": "success"})
        for seqs in results:
            assert seqs == list(range(seqs[0], 401)), seqs[:5]
            assert seqs[0] in (1, 6, 51)
        await broker.close()


async def test_quiet_runs_keep_their_buffer(private_redis):
    async with aio.open_loop():
        client = await _client(private_redis.url)
        broker = RedisBroker(client, retention_s=2)
        await broker.open()
        await _emit(broker.producer("quiet"), ["metadata"])
        await trio.sleep(1.2)
        await broker.touch(["quiet"])  # the heartbeater does this every interval
        await trio.sleep(1.2)
        assert await aio.call(client.llen, keys("quiet")[1]) == 1
        await broker.close()


@pytest.fixture
def migrated(database_url):
    migrate.ensure_migrated(database_url)
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO assistant (assistant_id, graph_id, name) VALUES ('a','g','g')")
        conn.execute("INSERT INTO thread (thread_id) VALUES ('t')")
        conn.execute("""INSERT INTO runs (run_id, thread_id, assistant_id, execution_params,
                        updated_at) VALUES ('pg-only', 't', 'a', '{}', now() - interval '1 h')""")
    return database_url


async def test_queue_order_front_and_postgres_fallback(private_redis, migrated):
    async with aio.open_loop():
        pool = PgPool(migrated)
        await pool.open()
        client = await _client(private_redis.url)
        await aio.call(client.delete, JOBS)
        queue = RedisQueue(client, pool, poll_s=0.2)
        await queue.put("r1")
        await queue.put("r2")
        await queue.put("urgent", front=True)
        assert [await queue.get() for _ in range(3)] == ["urgent", "r1", "r2"]
        assert await queue.depth() == 0
        # Redis gone: a worker still finds the pending run in PostgreSQL.
        private_redis.stop()
        with trio.fail_after(10):
            assert await queue.get() == "pg-only"
        assert not queue.redis_up
        await queue.put("lost-message")  # refused by Redis; must not raise
        private_redis.start()
        await queue.put("after")
        with trio.fail_after(10):
            got = await queue.get()
        assert got in ("after", "pg-only")  # pg-only is still pending: polling may offer it
        await pool.close()


async def test_cancel_bus_reaches_listeners(private_redis):
    async with aio.open_loop():
        client = await _client(private_redis.url)
        broker = await _open_broker(client)
        bus = RedisCancelBus(client, broker.fanout)
        got: list[tuple[str, str]] = []
        sink = await bus.listen(lambda r, a: got.append((r, a)), lambda: None)
        await bus.publish("run-x", "rollback")
        with trio.fail_after(5):
            while not got:
                await trio.sleep(0.01)
        assert got == [("run-x", "rollback")]
        await bus.stop(sink)
        await broker.close()


async def test_a_wait_timed_out_by_the_keepalive_loses_nothing(private_redis):
    """The SSE writer times out each wait for its keepalive comment; the subscription
    must survive that and still deliver every event, then end on the marker."""
    async with aio.open_loop():
        client = await _client(private_redis.url)
        broker = await _open_broker(client)
        producer = broker.producer("quiet-run")
        await _emit(producer, ["metadata"])
        sub = await broker.subscribe("quiet-run", 0)
        got = [(await sub.__anext__()).seq]
        for _ in range(3):  # quiet: three keepalive timeouts in a row
            with trio.move_on_after(0.05):
                got.append((await sub.__anext__()).seq)
        await _emit(producer, ["values", "values"])
        await broker.finish("quiet-run", {"status": "success"}, (("end", b"{}"),))
        async for event in sub:
            got.append(event.seq)
        await sub.aclose()
        assert got == [1, 2, 3, 4]
        await broker.close()


async def test_a_published_batch_drains_without_waiting(private_redis):
    """receive_nowait (the SSE writer's batching): once one event of a published batch
    has been awaited, the rest come without waiting, in order; then WouldBlock. The end
    marker is left to the next await, which still replays and ends the stream."""
    async with aio.open_loop():
        client = await _client(private_redis.url)
        broker = await _open_broker(client)
        producer = broker.producer("batched")
        await _emit(producer, ["metadata"])
        sub = await broker.subscribe("batched", 0)
        got = [(await sub.__anext__()).seq]
        await _emit(producer, [f"e{i}" for i in range(5)])  # one Lua call, one message
        got.append((await sub.__anext__()).seq)
        while True:
            try:
                got.append(sub.receive_nowait().seq)
            except trio.WouldBlock:
                break
        assert got == [1, 2, 3, 4, 5, 6]
        await broker.finish("batched", {"status": "success"}, (("end", b"{}"),))
        rest = []
        with trio.fail_after(5):
            while True:  # the end event, then the marker: flagged, left to the next await
                try:
                    rest.append(sub.receive_nowait().name)
                except trio.WouldBlock:
                    if sub._end_seen:
                        break
                    await trio.sleep(0.01)
        rest += [event.name async for event in sub]  # replays from the buffer, then ends
        await sub.aclose()
        assert rest == ["end"]
        await broker.close()


async def test_replay_survives_a_redis_restart(private_redis):
    """A pooled connection opened before Redis restarted fails once on its next use
    ("closed by server"); a replay (what every stream and /wait starts with) retries
    on a fresh connection instead of failing the request."""
    async with aio.open_loop():
        client = await _client(private_redis.url)
        broker = RedisBroker(client)
        await _emit(broker.producer("restart"), ["metadata", "values"])
        frames, done = await broker.replay("restart", 0)
        assert len(frames) == 2 and not done
        private_redis.stop()
        private_redis.start()  # empty: nothing is persisted
        frames, done = await broker.replay("restart", 0)
        assert (frames, done) == ([], False)
        await aio.call(client.aclose)


async def test_publish_linger_batches_a_run_and_the_drain_cuts_it_short(private_redis):
    """With a publish linger, events emitted while it runs go out in one Lua call (one
    pub/sub message); the run's final drain (aclose) does not wait the linger out."""
    import asyncio

    async with aio.open_loop():
        client = await _client(private_redis.url)
        broker = RedisBroker(client, linger_s=30.0)  # far longer than the test may take
        await aio.call(client.config_resetstat)

        async def run():
            producer = broker.producer("lingered")
            for i in range(10):
                producer.emit("custom", b'{"i":%d}' % i)
                await asyncio.sleep(0.01)  # a graph's pace: ten separate emits
            await producer.aclose()

        with trio.fail_after(10):
            await aio.call(run)
        evalsha = (await aio.call(client.info, "commandstats"))["cmdstat_evalsha"]
        # (redis-py's first EVALSHA of a script fails with NOSCRIPT, then loads it)
        assert evalsha["calls"] - evalsha["failed_calls"] == 1
        frames, _ = await broker.replay("lingered", 0)
        assert [parse(f).seq for f in frames] == list(range(1, 11))
        await aio.call(client.aclose)
