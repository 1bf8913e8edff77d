"""The PostgreSQL cross-process channel (issue 11, no Redis) across instances: two
queues (each its own pool and LISTEN connection, as two processes) share one table, and
a LISTEN connection that dies resynchronises and listens again; thread-level events
published on one instance reach the listeners on another (any size, any bytes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import asyncpg
import trio

from aegra.adapters import aio
from aegra.adapters.postgres import migrate, run_events
from aegra.adapters.postgres.cancel import PgCancelBus
from aegra.adapters.postgres.listen import APP_NAME, PgListener
from aegra.adapters.postgres.pool import PgPool
from aegra.adapters.postgres.queue import PgJobQueue
from aegra.domain.runs import sse_frame
from tests.contract import test_event_broker as broker_suite
from tests.contract.support import pg_pool
from tests.contract.test_event_broker import ThreadListener


@asynccontextmanager
async def instance(pool: PgPool, dsn: str) -> AsyncIterator[tuple[PgJobQueue, PgCancelBus]]:
    listener = PgListener(dsn, ping_s=0.2)
    await listener.open()
    try:
        # poll_s far beyond the test: only a NOTIFY can wake a waiting get in time.
        yield PgJobQueue(pool, listener, poll_s=3600), PgCancelBus(pool, listener)
    finally:
        await listener.close()


async def test_two_instances_share_one_queue_each_id_once(database_url: str) -> None:
    migrate.ensure_migrated(database_url)
    async with pg_pool(database_url, max_size=4) as pool:
        async with instance(pool, database_url) as (q1, _), \
                instance(pool, database_url) as (q2, _):
            got: dict[str, list[str]] = {"q1": [], "q2": []}
            ids = [f"run-{i}" for i in range(30)]

            async def consume(name: str, queue: PgJobQueue) -> None:
                while True:
                    got[name].append(await queue.get())

            with trio.fail_after(10):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(consume, "q1", q1)
                    nursery.start_soon(consume, "q2", q2)
                    for i, run_id in enumerate(ids):  # put on either instance
                        await (q1 if i % 2 else q2).put(run_id)
                    while len(got["q1"]) + len(got["q2"]) < len(ids):  # noqa: ASYNC110
                        await trio.sleep(0.01)
                    nursery.cancel_scope.cancel()
            assert sorted(got["q1"] + got["q2"]) == sorted(ids)  # none lost, none twice
            assert await q1.depth() == 0 and await q2.depth() == 0


async def test_a_dropped_listen_connection_resyncs_and_listens_again(database_url: str
                                                                     ) -> None:
    async with pg_pool(database_url) as pool, instance(pool, database_url) as (_, bus):
        resynced = trio.Event()
        send, recv = trio.open_memory_channel[tuple[str, str]](10)
        handle = await bus.listen(lambda r, a: send.send_nowait((r, a)), resynced.set)
        killed = await pool.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = $1 AND datname = current_database()", APP_NAME)
        assert killed == 1
        with trio.fail_after(10):
            await resynced.wait()  # the listener re-reads persisted requests now
            await bus.publish("after", "rollback")
            assert await recv.receive() == ("after", "rollback")
        await bus.stop(handle)


async def test_thread_events_contract_across_processes(database_url: str) -> None:
    """The EventBroker suite's thread-channel test, writer and reader on two instances."""
    await broker_suite.test_thread_events_reach_every_listener_in_order_until_it_stops(
        partial(broker_suite.open_postgres, database_url))


async def test_large_and_binary_thread_events_arrive_whole_and_in_order(database_url: str
                                                                        ) -> None:
    big = b'{"values":"' + b"x" * 20_000 + b'"}'  # past NOTIFY's 8000 bytes: by reference
    binary = bytes(range(256))  # not UTF-8: base64 on the wire
    async with broker_suite.open_postgres(database_url) as pair:
        listener = ThreadListener()
        handle = await pair.reader.listen_thread("t1", listener.sink)
        sent = [("state_update", b"1"), ("state_update", big), ("custom", binary),
                ("state_update", b"4")]
        for name, payload in sent:
            await pair.writer.publish_thread("t1", name, payload)
        assert [await listener.next() for _ in sent] == sent
        await pair.reader.unlisten_thread("t1", handle)


async def test_a_long_run_streams_across_processes_page_by_page_and_expires(
        database_url: str) -> None:
    """More events than one read's page reach a reader on another process, each once and
    in order; a run done longer than the retention is deleted by a later write."""
    async with broker_suite.open_postgres(database_url) as pair:
        run_id = broker_suite.rid()
        names = [f"e{i}" for i in range(600)]
        got: list[int] = []

        async def follow() -> None:
            got.extend(s for s, _, _ in await broker_suite.collect(
                await pair.reader.subscribe(run_id, 0)))

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(follow)
                await broker_suite.emit(pair.writer, run_id, names)
                await pair.writer.finish(run_id, broker_suite.DONE, (("end", b"{}"),))
        assert got == list(range(1, 602))
        assert await pair.reader.has(run_id) is True
        pair.writer.retention_s = 0  # what a later write finds now: done too long ago
        await pair.writer.touch([])
        assert await pair.reader.has(run_id) is False
        assert await pair.reader.result(run_id) == (False, None)


async def test_a_live_reader_takes_the_events_from_the_notification(database_url: str
                                                                     ) -> None:
    """A reader at the position right before a batch queues the events its NOTIFY carries
    without reading the table (issue 11: one query per batch and reader was the cost):
    here the batch's rows are deleted before its commit, so only the payload has them.
    The end, announced bare, is read from the table, without repeating what came inline."""
    async with broker_suite.open_postgres(database_url) as pair:
        run_id = broker_suite.rid()
        sub = await pair.reader.subscribe(run_id, 0)
        with trio.fail_after(10):
            await broker_suite.emit(pair.writer, run_id, ["a"])
            assert (await sub.__anext__()).seq == 1

            async def batch_without_rows(conn: asyncpg.Connection) -> None:
                async with conn.transaction():
                    await run_events.append(conn, run_id, [
                        (n, broker_suite.data(n, i)) for i, n in enumerate("bcd", 1)],
                        10_000, 1 << 24)
                    await conn.execute("DELETE FROM aegra_run_events WHERE run_id = $1"
                                       " AND seq > 1", run_id)
            await pair.writer.pg.run(batch_without_rows)
            inline = [await sub.__anext__() for _ in range(3)]
            assert [(e.seq, e.name) for e in inline] == [(2, "b"), (3, "c"), (4, "d")]
            assert inline[0].frame == sse_frame(run_id, 2, "b", broker_suite.data("b", 1))
            await pair.writer.finish(run_id, broker_suite.DONE, (("end", b"{}"),))
            assert [s for s, _, _ in await broker_suite.collect(sub)] == [5]


async def test_a_reader_that_does_not_consume_holds_at_most_a_page(database_url: str
                                                                    ) -> None:
    """Notified events are queued only while the reader's queue is under a page; past
    that it reads the table when it resumes: every event once, in order."""
    async with broker_suite.open_postgres(database_url) as pair:
        run_id = broker_suite.rid()
        ended = trio.Event()

        def sink(payload: str) -> None:  # called with the broker's sink, per notification
            if payload == run_id:
                ended.set()
        await pair.reader.listener.listen(run_events.CHANNEL, sink)
        sub = await pair.reader.subscribe(run_id, 0)
        with trio.fail_after(20):
            await broker_suite.emit(pair.writer, run_id, ["a"])
            assert (await sub.__anext__()).seq == 1
            await broker_suite.emit(pair.writer, run_id, [f"e{i}" for i in range(1000)])
            await pair.writer.finish(run_id, broker_suite.DONE, (("end", b"{}"),))
            await ended.wait()
            assert 0 < len(sub._pending) <= run_events.PAGE
            got = [s for s, _, _ in await broker_suite.collect(sub)]
        assert got == list(range(2, 1003))
        await pair.reader.listener.unlisten(run_events.CHANNEL, sink)


async def test_a_second_sink_waits_for_the_channels_listen_in_flight(database_url: str
                                                                     ) -> None:
    """``listen`` returns once the channel is listened on, for every caller: a sink added
    while the first caller's LISTEN is still on its way waits for it (its caller re-reads
    right after, and a NOTIFY in between must reach it)."""
    async with pg_pool(database_url) as pool:
        listener = PgListener(database_url, ping_s=0.2)
        await listener.open()
        try:
            first: list[str] = []
            second: list[str] = []
            returned = trio.Event()

            @aio.aio
            async def hold() -> None:
                assert listener._lock is not None
                await listener._lock.acquire()  # the connection is busy: LISTEN waits

            @aio.aio
            async def release() -> None:
                assert listener._lock is not None
                listener._lock.release()

            async def add_second() -> None:
                await listener.listen("aegra_probe", second.append)
                returned.set()

            with trio.fail_after(10):
                await hold()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(listener.listen, "aegra_probe", first.append)
                    while "aegra_probe" not in listener.sinks:  # noqa: ASYNC110
                        await trio.sleep(0.01)
                    nursery.start_soon(add_second)
                    await trio.sleep(0.3)
                    assert not returned.is_set()  # the LISTEN has not run yet
                    await release()
                    await returned.wait()
                    await pool.execute("SELECT pg_notify('aegra_probe', 'hello')")
                    while not second:  # noqa: ASYNC110
                        await trio.sleep(0.01)
            assert first == second == ["hello"]
        finally:
            await listener.close()
