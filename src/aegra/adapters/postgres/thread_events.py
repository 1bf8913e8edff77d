"""Thread-level events over PostgreSQL NOTIFY ``aegra_thread`` (issue 11, no Redis).

A ``state_update`` written on one process reaches the thread join streams open on every
process on the database. Live only, like the platform's and the Redis channel: nothing is
kept for a stream that joins later. One channel for every thread (thread ids are not
identifiers, and this mode is for a few processes): each process filters by thread.

Payload ``<kind><thread_id>\\n<name>\\n<body>``: kind ``t`` (the data as UTF-8 text) or
``b`` (base64, for bytes that are not NUL-free UTF-8). NOTIFY payloads stop at 8000
bytes, so a larger event is written to ``aegra_thread_events`` (migration 0005) and
the notification is ``@<row id>``. Notifications are handed, in arrival order, to one
asyncio task that reads such rows and calls the sinks, so a large event never overtakes
or is overtaken. Its queue is bounded (``max_pending``); past it events are dropped and
logged, as a slow pub/sub reader would lose them: the thread's state stays readable.

While the LISTEN connection is down a listener falls back to the process' in-memory
broker (every publish also goes there), as the Redis channel does.
"""

from __future__ import annotations

import asyncio
import base64

import asyncpg

from aegra import logs
from aegra.adapters.aio import aio, cancel_task
from aegra.adapters.memory.broker import MemoryBroker
from aegra.adapters.postgres.listen import RESYNC, PgListener
from aegra.adapters.postgres.pool import PgPool
from aegra.domain.errors import StoreUnavailable
from aegra.domain.ports import ThreadHandle, ThreadSink

log = logs.get_logger("aegra.postgres.thread_events")
CHANNEL = "aegra_thread"
MAX_NOTIFY = 7900  # PostgreSQL's limit is 8000 bytes; leave room for the channel name

_STORE = """
WITH pruned AS (DELETE FROM aegra_thread_events WHERE created_at < now() - interval '1 minute')
INSERT INTO aegra_thread_events (payload) VALUES ($1) RETURNING id
"""


def encode(thread_id: str, name: str, data: bytes) -> str:
    try:
        text = data.decode()
        if "\x00" in text:
            raise UnicodeDecodeError("utf-8", data, 0, 1, "NUL")
        return f"t{thread_id}\n{name}\n{text}"
    except UnicodeDecodeError:
        return f"b{thread_id}\n{name}\n{base64.b64encode(data).decode()}"


def decode(payload: str) -> tuple[str, str, bytes]:
    kind, rest = payload[0], payload[1:]
    thread_id, name, body = rest.split("\n", 2)
    return thread_id, name, (base64.b64decode(body) if kind == "b" else body.encode())


class PgThreadEvents:
    def __init__(self, pg: PgPool, listener: PgListener, *, max_pending: int = 10_000
                 ) -> None:
        self.pg = pg
        self.listener = listener
        self.local = MemoryBroker()  # the fallback while LISTEN is down
        self.sinks: dict[str, list[ThreadSink]] = {}
        self.max_pending = max_pending
        self._queue: asyncio.Queue[str] | None = None
        self._task: asyncio.Task[None] | None = None
        self._listening = False

    async def open(self) -> None:
        @aio
        async def _open() -> None:
            self._queue = asyncio.Queue(self.max_pending)
            self._task = asyncio.get_running_loop().create_task(self._deliver_forever())
        await _open()

    async def close(self) -> None:
        task, self._task = self._task, None
        if self._listening:
            self._listening = False
            await self.listener.unlisten(CHANNEL, self._notified)
        if task is not None:
            await cancel_task(task)

    def _notified(self, payload: str) -> None:
        if payload == RESYNC or self._queue is None:
            return  # lost while disconnected: live events are not replayed
        try:
            self._queue.put_nowait(payload)
        except asyncio.QueueFull:
            log.warning("thread_event.dropped", reason="delivery queue full")

    async def _deliver_forever(self) -> None:
        assert self._queue is not None
        while True:
            payload = await self._queue.get()
            try:
                if payload.startswith("@"):
                    payload = await self._stored(int(payload[1:]))
                    if not payload:
                        continue
                thread_id, name, data = decode(payload)
            except (asyncpg.PostgresError, OSError, ValueError) as exc:
                log.warning("thread_event.unreadable", error=repr(exc))
                continue
            for sink in list(self.sinks.get(thread_id, ())):
                sink(name, data)

    async def _stored(self, row_id: int) -> str:
        async with self.pg.raw.acquire() as conn:
            return await conn.fetchval(
                "SELECT payload FROM aegra_thread_events WHERE id = $1", row_id) or ""

    async def publish(self, thread_id: str, name: str, data: bytes) -> None:
        await self.local.publish_thread(thread_id, name, data)
        payload = encode(thread_id, name, data)
        try:
            if len(payload.encode()) > MAX_NOTIFY:
                row_id = await self.pg.fetchval(_STORE, payload)
                payload = f"@{row_id}"
            await self.pg.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
        except StoreUnavailable as exc:  # live only: the state itself stays readable
            log.warning("thread_event.publish_failed", thread_id=thread_id,
                        error=exc.message)

    async def listen(self, thread_id: str, sink: ThreadSink) -> ThreadHandle:
        try:
            if not self._listening:
                await self.listener.listen(CHANNEL, self._notified)
                self._listening = True
        except StoreUnavailable as exc:
            log.info("thread_event.listen_local", thread_id=thread_id, error=exc.message)
            return await self.local.listen_thread(thread_id, sink)
        self.sinks.setdefault(thread_id, []).append(sink)
        return sink

    async def unlisten(self, thread_id: str, handle: ThreadHandle) -> None:
        # Registered in one place only; dropping it where it is not is a no-op.
        await self.local.unlisten_thread(thread_id, handle)
        sinks = self.sinks.get(thread_id)
        if sinks is not None and handle in sinks:
            sinks.remove(handle)
            if not sinks:
                del self.sinks[thread_id]

