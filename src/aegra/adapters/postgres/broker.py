"""EventBroker on PostgreSQL (issue 11, no Redis): any process serves any run's stream.

The model is the Redis broker: producers batch (events emitted while a write is in
flight go together in the next one), each batch is numbered and stored by one
transaction that NOTIFYs ``aegra_run`` (``run_events.py``), the events themselves in
the payloads when they fit. A subscriber registers with the process' one LISTEN
connection, then reads the rows after its position. A notification that carries the
events right after its position is queued as it is: a live reader does no query (issue
11: reading per batch and per reader cost 2-3x the memory broker's CPU). Otherwise (a
gap, a bare notice, a finish) it reads again; also on ``RESYNC`` (the LISTEN connection
came back: notifications may be lost) and every ``poll_s`` for safety. Reading pulls
pages from the table and inline events are taken only while the queue is under a page,
so a slow reader holds at most a page or so and costs no memory while it lags; if the
buffer's cap trims events it has not read, it gets the dropped notice on its next read,
as a late joiner would. Hence ``lagged`` stays False here.

Thread-level events go through ``PgThreadEvents`` (NOTIFY ``aegra_thread``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from functools import partial

import asyncpg
import msgspec
import trio

from aegra import logs
from aegra.adapters.aio import aio
from aegra.adapters.postgres import run_events
from aegra.adapters.postgres.listen import RESYNC, PgListener
from aegra.adapters.postgres.pool import _UNAVAILABLE, PgPool
from aegra.adapters.postgres.thread_events import PgThreadEvents
from aegra.domain.errors import StoreUnavailable
from aegra.domain.ports import Producer, RunResult, StreamEvent, ThreadHandle, ThreadSink
from aegra.domain.replay import dropped_notice

log = logs.get_logger("aegra.postgres.broker")
BATCH = 256  # events per transaction


class PgProducer:
    """Asyncio-side producer: ``emit`` is sync and cheap; one flush task ships batches."""

    def __init__(self, broker: PgBroker, run_id: str) -> None:
        self.broker = broker
        self.run_id = run_id
        self.pending: list[tuple[str, bytes]] = []
        self.flushing: asyncio.Task[None] | None = None

    def emit(self, name: str, data: bytes) -> None:
        self.pending.append((name, data))
        if self.flushing is None or self.flushing.done():
            self.flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        broker = self.broker
        while self.pending:
            batch, self.pending = self.pending[:BATCH], self.pending[BATCH:]
            try:
                async with broker.pg.raw.acquire() as conn:
                    await run_events.append(conn, self.run_id, batch, broker.max_events,
                                            broker.max_bytes)
            except (StoreUnavailable, asyncpg.PostgresError, *_UNAVAILABLE) as exc:
                # Live events only: the run itself and its result are in ``runs``.
                log.warning("broker.publish_failed", run_id=self.run_id, error=repr(exc))
                self.pending.clear()

    async def aclose(self) -> None:
        while self.flushing is not None and not self.flushing.done():
            await asyncio.shield(self.flushing)


class PgSubscription:
    def __init__(self, broker: PgBroker, run_id: str, after_seq: int) -> None:
        self.broker = broker
        self.run_id = run_id
        self.queued = after_seq  # highest sequence number handed to _pending
        self._pending: deque[StreamEvent] = deque()
        self._notes = 1  # bumped by each wakeup; a read catches up with it
        self._read_at = 0
        self._wake = trio.Event()
        self._finished = False
        self.lagged = False  # pulled from the table: a slow reader never grows memory

    def _notified(self, last_seq: int | None, events: list[StreamEvent] | None = None
                  ) -> None:
        """Sync, in Trio's thread (the listener's callback). Events carried by the
        notification that continue this reader's position are queued as they are (no
        query), within the page bound; anything else (a gap, a full queue, a bare
        notice) makes the reader query the table."""
        if self._finished or (last_seq is not None and last_seq <= self.queued):
            return
        if (events and events[0].seq <= self.queued + 1
                and len(self._pending) + len(events) <= run_events.PAGE):
            for event in events:
                if event.seq > self.queued:
                    self.queued = event.seq
                    self._pending.append(event)
        else:
            self._notes += 1
        self._wake.set()

    def __aiter__(self) -> PgSubscription:
        return self

    async def __anext__(self) -> StreamEvent:
        """Cancel-safe: all state lives on the object, and a read cancelled midway leaves
        ``_read_at`` behind ``_notes``, so the next call reads again."""
        while True:
            if self._pending:
                return self._pending.popleft()
            if self._finished:
                raise StopAsyncIteration
            if self._read_at != self._notes:
                target = self._notes
                dropped, done, events = await self.broker.read(self.run_id, self.queued)
                self._queue(dropped, events)
                if done:
                    self._finished = True
                self._read_at = target if len(events) < run_events.PAGE else 0
                continue
            self._wake = trio.Event()
            with trio.move_on_after(self.broker.poll_s) as timer:
                await self._wake.wait()
            if timer.cancelled_caught:
                self._notes += 1

    def _queue(self, dropped: int, events: list[StreamEvent]) -> None:
        notice = dropped_notice(self.run_id, self.queued, dropped + 1)
        for event in ([notice] if notice is not None else []) + events:
            if event.seq > self.queued:
                self.queued = event.seq
                self._pending.append(event)

    def receive_nowait(self) -> StreamEvent:
        """The next event already read, else ``trio.WouldBlock`` (reads need an await)."""
        if self._pending:
            return self._pending.popleft()
        raise trio.WouldBlock

    async def aclose(self) -> None:
        self._finished = True
        self.broker.forget(self)


class PgBroker:
    def __init__(self, pg: PgPool, listener: PgListener, *, retention_s: float = 3600.0,
                 max_events: int = 10_000, max_bytes: int = 16 * 1024 * 1024,
                 poll_s: float = 5.0) -> None:
        self.pg = pg
        self.listener = listener
        self.retention_s = retention_s
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.poll_s = poll_s  # safety net only: notifications wake subscribers
        self.threads = PgThreadEvents(pg, listener)
        self.subs: dict[str, set[PgSubscription]] = {}
        self._listening = False

    @property
    def healthy(self) -> bool:
        return self.listener.healthy

    async def open(self) -> None:
        await self.threads.open()

    async def close(self) -> None:
        if self._listening:
            self._listening = False
            await self.listener.unlisten(run_events.CHANNEL, self._notified)
        await self.threads.close()

    def _notified(self, payload: str) -> None:
        if payload == RESYNC:
            for subs in list(self.subs.values()):
                for sub in list(subs):
                    sub._notified(None)
            return
        head, _, body = payload.partition("\n")
        run_id, _, seq = head.partition(" ")
        followers = self.subs.get(run_id)
        if not followers:  # every process hears every run: decode only what is followed
            return
        last = int(seq) if seq else None
        events = None
        if body and last:
            try:
                events = run_events.inline(run_id, last, body)
            except msgspec.DecodeError:  # not ours to parse: the table has the events
                log.info("broker.bad_notice", run_id=run_id)
        for sub in list(followers):
            sub._notified(last, events)

    def producer(self, run_id: str) -> Producer:
        return PgProducer(self, run_id)

    async def drain(self, producer: Producer) -> None:
        await aio(producer.aclose)()

    async def read(self, run_id: str, after_seq: int
                   ) -> tuple[int, bool, list[StreamEvent]]:
        return await self.pg.run(run_events.read, run_id, after_seq)

    async def subscribe(self, run_id: str, after_seq: int) -> PgSubscription:
        if not self._listening:
            try:
                await self.listener.listen(run_events.CHANNEL, self._notified)
                self._listening = True
            except StoreUnavailable as exc:  # the safety poll serves until it is back
                log.info("broker.listen_failed", run_id=run_id, error=exc.message)
        sub = PgSubscription(self, run_id, after_seq)
        self.subs.setdefault(run_id, set()).add(sub)
        return sub  # its first step reads the table: listen-then-read, nothing missed

    def forget(self, sub: PgSubscription) -> None:
        subs = self.subs.get(sub.run_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self.subs[sub.run_id]

    async def finish(self, run_id: str, result: RunResult,
                     final: tuple[tuple[str, bytes], ...] = ()) -> None:
        try:
            await self.pg.run(run_events.finish, run_id, msgspec.json.encode(result),
                              list(final), self.max_events, self.max_bytes)
        except StoreUnavailable as exc:  # the result stands in ``runs``; waiters poll it
            log.warning("broker.finish_failed", run_id=run_id, error=exc.message)
            return
        await self._expire()

    async def reset(self, run_id: str) -> None:
        await self.pg.execute("UPDATE aegra_run_streams SET done = false, result = NULL,"
                              " touched_at = now() WHERE run_id = $1", run_id)

    async def result(self, run_id: str) -> tuple[bool, RunResult | None]:
        try:
            row = await self.pg.fetchrow(
                "SELECT result FROM aegra_run_streams WHERE run_id = $1 AND done", run_id)
        except StoreUnavailable as exc:  # callers fall back to the run's row
            log.info("broker.result_failed", run_id=run_id, error=exc.message)
            return False, None
        if row is None:
            return False, None
        return True, msgspec.json.decode(row["result"])

    async def wait_done(self, run_id: str) -> RunResult | None:
        """Pushed, not polled: the finish's notification wakes the subscription."""
        sub = await self.subscribe(run_id, 1 << 62)  # no replay wanted, only the end
        try:
            async for _ in sub:
                pass
        except StoreUnavailable as exc:
            log.info("broker.wait_failed", run_id=run_id, error=exc.message)
            await trio.sleep(1.0)  # the caller re-checks the database; no hot loop
            return None
        finally:
            await sub.aclose()
        done, result = await self.result(run_id)
        return result if done else None

    async def has(self, run_id: str) -> bool:
        return bool(await self.pg.fetchval(
            "SELECT EXISTS (SELECT 1 FROM aegra_run_streams WHERE run_id = $1)", run_id))

    async def touch(self, run_ids: list[str]) -> None:
        """Keep live runs' buffers from expiring, however quiet the run is."""
        try:
            await self.pg.execute("UPDATE aegra_run_streams SET touched_at = now()"
                                  " WHERE run_id = ANY($1)", run_ids)
        except StoreUnavailable as exc:
            log.info("broker.touch_failed", error=exc.message)
        await self._expire()

    async def _expire(self) -> None:
        try:
            await self.pg.run(partial(run_events.expire, retention_s=self.retention_s))
        except StoreUnavailable as exc:
            log.info("broker.expire_failed", error=exc.message)

    # Thread-level events: thread_events.py.
    async def publish_thread(self, thread_id: str, name: str, data: bytes) -> None:
        await self.threads.publish(thread_id, name, data)

    async def listen_thread(self, thread_id: str, sink: ThreadSink) -> ThreadHandle:
        return await self.threads.listen(thread_id, sink)

    async def unlisten_thread(self, thread_id: str, handle: ThreadHandle) -> None:
        await self.threads.unlisten(thread_id, handle)
