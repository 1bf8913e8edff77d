"""Ring 2: the Redis error table and fallback policy (``adapters/redis/client.py``).

With a private redis-server stopped (or refusing writes), every adapter operation either
raises ``StoreUnavailable`` or applies the fallback ``FALLBACKS`` documents for it, logged
as a warning naming the operation. ``RAISES`` and the per-test assertions are the
contract; the first test keeps it and ``FALLBACKS`` in step.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import pytest
import redis.asyncio as aioredis
import trio
import trio.testing
from redis import exceptions as rex

from aegra.adapters import aio
from aegra.adapters.postgres import migrate
from aegra.adapters.postgres.pool import PgPool
from aegra.adapters.redis.broker import RedisBroker, RedisSubscription, batch_key, keys, split
from aegra.adapters.redis.cancel import CHANNEL, RedisCancelBus
from aegra.adapters.redis.client import FALLBACKS, RedisClient, best_effort, mapped
from aegra.adapters.redis.queue import RedisQueue
from aegra.domain.errors import StoreUnavailable

# Operations whose Redis failure is the caller's error (a 503 at the HTTP edge).
RAISES = {"ping", "cancel.listen", "fanout.subscribe", "broker.append", "broker.replay"}
# Fallbacks this module makes happen and checks (the rest are listed with the reason).
EXERCISED = {"cancel.publish", "queue.push", "queue.pop", "queue.depth", "broker.publish",
             "broker.finish", "broker.reset", "broker.result", "broker.has", "broker.touch",
             "broker.subscribe", "broker.wait", "fanout.read", "thread.publish",
             "thread.listen"}
NOT_EXERCISED = {
    # Only attempted while the pub/sub connection looks healthy, so it needs Redis to die
    # between two awaits of one call: not reproducible without patching.
    "fanout.unsubscribe",
}


def test_the_contract_and_the_fallback_table_agree() -> None:
    assert RAISES.isdisjoint(FALLBACKS)
    assert EXERCISED | NOT_EXERCISED == set(FALLBACKS)


# -- the table itself -------------------------------------------------------------------

@pytest.mark.parametrize("exc", [
    rex.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused."),
    rex.ConnectionError("Connection closed by server."),
    rex.BusyLoadingError("Redis is loading the dataset in memory"),
    rex.AuthenticationError("invalid password"),
    rex.TimeoutError("Timeout reading from socket"),
    TimeoutError(),
    ConnectionResetError(104, "reset"),
    OSError(113, "No route to host"),
    rex.ReadOnlyError("You can't write against a read only replica."),
    rex.OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
    rex.MasterDownError("Link with MASTER is down"),
    rex.TryAgainError("Multiple keys request during rehashing of slot"),
    rex.ResponseError("MISCONF Redis is configured to save RDB snapshots, but ..."),
    rex.ResponseError("BUSY Redis is busy running a script."),
    rex.ResponseError("Error running script (call to f_x): @user_script:1: @user_script: 1:"
                      " -OOM command not allowed when used memory > 'maxmemory'."),
])
def test_unavailability_becomes_store_unavailable_naming_redis_and_the_op(
        exc: BaseException) -> None:
    with pytest.raises(StoreUnavailable) as info, mapped("queue.push"):
        raise exc
    assert info.value.message.startswith("Redis unavailable (queue.push): ")
    assert info.value.__cause__ is exc
    assert info.value.status == 503


@pytest.mark.parametrize("exc", [
    rex.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
    rex.ResponseError("BUSYKEY Target key name already exists."),
    rex.ResponseError("Error running script (call to f_x): @user_script:3: bad argument"),
    rex.NoPermissionError("this user has no permissions to run the 'evalsha' command"),
    rex.DataError("Invalid input of type: 'dict'"),
    ValueError("a bug of ours"),
])
def test_anything_else_passes_unchanged(exc: BaseException) -> None:
    with pytest.raises(type(exc)) as info, mapped("broker.replay"):
        raise exc
    assert info.value is exc


def test_an_asyncio_cancellation_is_mapped_only_on_the_trio_side() -> None:
    with pytest.raises(StoreUnavailable, match=r"Redis unavailable \(broker.replay\)"), \
            mapped("broker.replay"):
        raise asyncio.CancelledError()
    with pytest.raises(asyncio.CancelledError), mapped("broker.publish", asyncio_side=True):
        raise asyncio.CancelledError()  # there it is the task's own cancellation


async def test_an_asyncio_side_cancellation_crossing_the_bridge_is_store_unavailable(
        ) -> None:
    async with aio.open_loop():
        @aio.aio
        async def connection_dropped() -> None:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()  # what redis-py's pool does to a call on a dead connection
            await asyncio.sleep(1)

        with pytest.raises(StoreUnavailable), mapped("queue.pop"):
            await connection_dropped()


async def test_a_fallback_must_be_documented_even_while_redis_is_up() -> None:
    async def fine() -> int:
        return 1

    with pytest.raises(KeyError, match="no documented fallback"):
        await best_effort("broker.something_new", fine, 0)
    assert await best_effort("queue.depth", fine, -1) == 1


# -- against a stopped server -----------------------------------------------------------

def fallbacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The operations that logged a fallback, in order."""
    return [r.fields["op"] for r in caplog.records  # type: ignore[attr-defined]
            if r.levelno == logging.WARNING and "op" in getattr(r, "fields", {})]


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 10) -> None:
    """Poll state held outside Trio (a server, the asyncio-side reader): no Event exists."""
    with trio.fail_after(timeout_s):
        while not await check():  # noqa: ASYNC110
            await trio.sleep(0.01)


async def _client(url: str) -> aioredis.Redis:
    @aio.aio
    async def make() -> aioredis.Redis:
        return aioredis.Redis.from_url(url, socket_connect_timeout=1)
    return await make()


async def _healthy_broker(client: aioredis.Redis) -> RedisBroker:
    broker = RedisBroker(client, retention_s=60)
    await broker.open()

    async def up() -> bool:
        return broker.healthy
    await eventually(up)
    return broker


async def _stop(private_redis: Any, broker: RedisBroker) -> None:
    """Stop the server and wait until the pub/sub reader has noticed."""
    private_redis.stop()

    async def down() -> bool:
        return not broker.healthy
    await eventually(down)


async def _emit(producer: Any, names: list[str]) -> None:
    async def go() -> None:
        for name in names:
            producer.emit(name, b"{}")
        await producer.aclose()
    await aio.call(go)


async def test_ping_raises(private_redis: Any) -> None:
    async with aio.open_loop():
        with pytest.raises(StoreUnavailable, match=r"Redis .*\(ping\)"):
            await RedisClient(private_redis.url).ping()  # never opened
        client = RedisClient(private_redis.url)
        await client.open()
        await client.ping()
        private_redis.stop()
        with pytest.raises(StoreUnavailable, match=r"Redis unavailable \(ping\)"):
            await client.ping()
        await client.close()


async def test_broker_with_redis_stopped(private_redis: Any,
                                         caplog: pytest.LogCaptureFixture) -> None:
    async with aio.open_loop():
        client = await _client(private_redis.url)
        broker = await _healthy_broker(client)
        await _stop(private_redis, broker)
        assert fallbacks(caplog) == ["fanout.read"]  # once for the outage, not per retry
        assert [r.getMessage() for r in caplog.records] == ["redis.pubsub_lost"]
        caplog.clear()

        # broker.publish: the producer keeps going; its events stay in the local log.
        await _emit(broker.producer("r"), ["metadata", "values"])
        assert fallbacks(caplog) == ["broker.publish"]
        assert broker.local.known("r")
        # ... while a direct append (asyncio side) and a replay raise.
        with pytest.raises(StoreUnavailable, match=r"\(broker.publish\)"):
            await aio.call(broker.append, "r", [b"values", b"{}"])
        with pytest.raises(StoreUnavailable, match=r"\(broker.replay\)"):
            await broker.replay("r", 0)
        caplog.clear()

        # broker.subscribe: the local log serves the run (Redis is known to be down).
        sub = await broker.subscribe("r", 0)
        assert not isinstance(sub, RedisSubscription)
        await broker.finish("r", {"status": "success"}, (("end", b"{}"),))
        with trio.fail_after(5):
            assert [e.name async for e in sub] == ["metadata", "values", "end"]
        assert fallbacks(caplog) == ["broker.finish"]
        caplog.clear()

        assert await broker.result("r") == (True, {"status": "success"})
        assert await broker.wait_done("r") == {"status": "success"}
        assert await broker.has("r")  # the local log answers first: Redis not asked
        assert fallbacks(caplog) == ["broker.result", "broker.result"]
        caplog.clear()

        assert not await broker.has("elsewhere")
        assert await broker.result("elsewhere") == (False, None)
        await broker.reset("r")
        await broker.touch(["r"])
        assert fallbacks(caplog) == ["broker.has", "broker.result", "broker.reset",
                                     "broker.touch"]
        await broker.close()


async def test_a_subscription_redis_dies_under_raises(private_redis: Any) -> None:
    async with aio.open_loop():
        client = await _client(private_redis.url)
        broker = await _healthy_broker(client)
        sub = await broker.subscribe("live", 0)
        assert isinstance(sub, RedisSubscription)
        await _stop(private_redis, broker)
        with pytest.raises(StoreUnavailable, match=r"\(broker.replay\)"):
            await sub.__anext__()
        await sub.aclose()
        await broker.close()


async def test_wait_done_falls_back_when_redis_dies_under_it(
        private_redis: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Subscribed (SUBSCRIBE is not paused), then the replay is held by CLIENT PAUSE
    WRITE until the server goes away: the wait gives up with None (the caller re-checks
    PostgreSQL) instead of failing the request."""
    async with aio.open_loop():
        client = await _client(private_redis.url)
        admin = await _client(private_redis.url)
        broker = await _healthy_broker(client)
        await aio.call(admin.client_pause, 60_000, False)  # all=False: WRITE only
        got: list[Any] = ["not returned"]

        async def wait() -> None:
            got[0] = await broker.wait_done("held")

        async def replay_held() -> bool:
            return "cmd=evalsha" in str(await aio.call(admin.execute_command, "CLIENT", "LIST"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait)
            await eventually(replay_held)
            private_redis.stop()
        assert got == [None]
        assert "broker.wait" in fallbacks(caplog)
        await broker.close()


async def test_cancel_bus_with_redis_stopped(private_redis: Any,
                                             caplog: pytest.LogCaptureFixture) -> None:
    async with aio.open_loop():
        client = await _client(private_redis.url)
        broker = await _healthy_broker(client)
        bus = RedisCancelBus(client, broker.fanout)
        await _stop(private_redis, broker)
        caplog.clear()
        await bus.publish("run-x", "interrupt")  # persisted already: must not raise
        assert fallbacks(caplog) == ["cancel.publish"]
        with pytest.raises(StoreUnavailable, match=r"\(fanout.subscribe\)"):
            await bus.listen(lambda r, a: None, lambda: None)
        # A failed listen leaves nothing behind (the listener retries every few seconds).
        assert CHANNEL not in broker.fanout.sinks
        await broker.close()


async def test_thread_events_with_redis_stopped(private_redis: Any,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """A stream listening while Redis is away hears this instance's state writes."""
    async with aio.open_loop():
        client = await _client(private_redis.url)
        broker = await _healthy_broker(client)
        await _stop(private_redis, broker)
        caplog.clear()
        got: list[tuple[str, bytes]] = []
        handle = await broker.listen_thread("t", lambda name, data: got.append((name, data)))
        await broker.publish_thread("t", "state_update", b"{}")
        assert got == [("state_update", b"{}")]
        assert fallbacks(caplog) == ["thread.listen", "thread.publish"]
        await broker.unlisten_thread("t", handle)
        await broker.publish_thread("t", "state_update", b"{}")
        assert len(got) == 1
        assert not broker.fanout.sinks  # the failed subscription left nothing behind
        await broker.close()


@pytest.fixture
def pending_run(database_url: str) -> str:
    migrate.ensure_migrated(database_url)
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO assistant (assistant_id, graph_id, name) VALUES ('a','g','g')")
        conn.execute("INSERT INTO thread (thread_id) VALUES ('t')")
        conn.execute("""INSERT INTO runs (run_id, thread_id, assistant_id, execution_params,
                        updated_at) VALUES ('pg-only', 't', 'a', '{}', now() - interval '1 h')""")
    return database_url


async def test_queue_with_redis_stopped(private_redis: Any, pending_run: str,
                                        caplog: pytest.LogCaptureFixture) -> None:
    async with aio.open_loop():
        pool = PgPool(pending_run)
        await pool.open()
        client = await _client(private_redis.url)
        queue = RedisQueue(client, pool, poll_s=0.2)
        private_redis.stop()
        await queue.put("lost-message")  # the run is pending in PostgreSQL
        assert await queue.depth() == -1
        assert fallbacks(caplog) == ["queue.push", "queue.depth"]
        caplog.clear()
        with trio.fail_after(10):
            assert await queue.get() == "pg-only"
            assert await queue.get() == "pg-only"  # (unclaimed: polling offers it again)
        assert not queue.redis_up
        # One warning for the switch to polling, not one per poll.
        assert [(r.getMessage(), r.fields["op"]) for r in caplog.records  # type: ignore[attr-defined]
                ] == [("redis.queue_unavailable", "queue.pop")]
        await pool.close()


async def test_a_server_refusing_writes(private_redis: Any,
                                        caplog: pytest.LogCaptureFixture) -> None:
    """Up but out of memory: writes fall back as for an outage, reads still work."""
    async with aio.open_loop():
        client = await _client(private_redis.url)
        broker = await _healthy_broker(client)
        queue = RedisQueue(client, PgPool("postgresql://unused"), poll_s=0.2)
        await aio.call(client.config_set, "maxmemory", 1)
        await queue.put("refused")
        await _emit(broker.producer("oom"), ["metadata"])
        await broker.finish("oom", {"status": "success"})
        assert fallbacks(caplog) == ["queue.push", "broker.publish", "broker.finish"]
        assert await broker.replay("oom", 0) == ([], False)  # reads are served
        assert await queue.depth() == 0
        await aio.call(client.config_set, "maxmemory", 0)
        await broker.close()


# -- a failed flush is retried while the fanout is healthy ------------------------------

async def test_an_append_repeating_its_token_appends_and_publishes_nothing(
        private_redis: Any) -> None:
    """A retry whose first try ran but lost its reply must not append the batch twice."""
    async with aio.open_loop():
        client = await _client(private_redis.url)
        broker = await _healthy_broker(client)
        published: list[bytes] = []
        await broker.fanout.subscribe(keys("r")[2].encode(), published.append)
        assert await aio.call(broker.append, "r", [b"values", b"{}"], "p:1") == 1
        assert await aio.call(broker.append, "r", [b"values", b"{}"], "p:1") == 1
        assert await aio.call(broker.append, "r", [b"updates", b"{}"], "p:2") == 2

        async def both_published() -> bool:
            return len(published) >= 2
        await eventually(both_published)  # one channel, in order: a repeat came between
        assert [[(e.seq, e.name) for e in split(m)] for m in published] == [
            [(1, "values")], [(2, "updates")]]
        assert await aio.call(client.get, keys("r")[0]) == b"2"
        assert await aio.call(client.llen, keys("r")[1]) == 2
        assert 0 < await aio.call(client.ttl, batch_key("r")) <= 60
        await broker.close()


async def test_a_flush_failing_on_a_dropped_connection_is_retried_and_loses_nothing(
        private_redis: Any, caplog: pytest.LogCaptureFixture) -> None:
    """The pub/sub fanout stays healthy, so every subscriber reads Redis: a batch whose
    call fails (here its connection is killed while CLIENT PAUSE WRITE holds it, as a
    stale pooled connection fails after a restart) is sent again, ahead of later ones."""
    async with aio.open_loop():
        client = await _client(private_redis.url)
        admin = await _client(private_redis.url)
        broker = await _healthy_broker(client)
        sub = await broker.subscribe("r", 0)
        assert isinstance(sub, RedisSubscription)
        producer = broker.producer("r")
        got: list[tuple[int, str]] = []

        async def collect() -> None:
            async for event in sub:
                got.append((event.seq, event.name))

        async def emit(name: str) -> None:  # leaves the flush running
            producer.emit(name, b"{}")

        async def held() -> list[int]:
            clients = await aio.call(admin.client_list)
            return [int(c["id"]) for c in clients
                    if c["cmd"] == "evalsha" and "b" in c["flags"]]  # b: blocked

        async def one_held() -> bool:
            return len(await held()) == 1

        async with trio.open_nursery() as nursery:
            nursery.start_soon(collect)
            await _emit(producer, ["metadata"])
            await aio.call(admin.client_pause, 60_000, False)  # all=False: WRITE only
            await aio.call(emit, "values")
            await eventually(one_held)
            [held_id] = await held()
            assert await aio.call(admin.client_kill_filter, _id=held_id) == 1
            await aio.call(admin.client_unpause)
            await _emit(producer, ["updates"])
            await broker.finish("r", {"status": "success"}, (("end", b"{}"),))
        await sub.aclose()
        assert got == [(1, "metadata"), (2, "values"), (3, "updates"), (4, "end")]
        assert broker.healthy
        assert fallbacks(caplog) == []  # no fallback: nothing fell back to the local log
        await broker.close()
