"""One PostgreSQL LISTEN connection per instance, fanned out to local sinks.

The cross-process channel without Redis (issue 11): NOTIFY is PostgreSQL's pub/sub, so
several processes on one database share cancels, queue wakeups and thread events without
a new component. LISTEN is session state, so it needs a dedicated connection outside the
pool (whose release drops listeners). Channels are listened on demand; one asyncio task
owns the connection, pings it, and on loss reconnects, listens again and hands every sink
``RESYNC``: a notification sent meanwhile is gone, and each user has its persisted truth
to re-read (cancel requests in ``runs``, queued ids in ``aegra_jobs``).

Sinks are plain callbacks called in Trio's thread (trio-asyncio runs the loop there), so
a sink may ``send_nowait`` into a bounded Trio memory channel; each user states its own
overflow rule. ``listen`` returns once PostgreSQL ran the LISTEN, which is what makes
listen-then-reread exact; it raises ``StoreUnavailable`` when the database is away.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from functools import partial

import asyncpg
import trio

from aegra import logs
from aegra.adapters.aio import aio, cancel_task
from aegra.adapters.postgres.pool import _UNAVAILABLE
from aegra.adapters.sinks import SinkRegistry
from aegra.domain.errors import StoreUnavailable

log = logs.get_logger("aegra.postgres.listen")
RESYNC = "\x00resync"  # NOTIFY payloads are text without NUL, so this never collides
Sink = Callable[[str], None]
APP_NAME = "aegra-listen"  # pg_stat_activity tells the LISTEN connections apart


class _Pending:
    """A channel's first LISTEN, awaited by the sinks registered meanwhile."""

    __slots__ = ("done", "ok")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.ok = False


def _set(event: asyncio.Event, _conn: object) -> None:
    event.set()


class PgListener:
    def __init__(self, dsn: str, *, ping_s: float = 2.0) -> None:
        self.dsn = dsn
        self.ping_s = ping_s
        self.sinks: SinkRegistry[str, str] = SinkRegistry()
        self.healthy = False
        self._conn: asyncpg.Connection | None = None
        self._lock: asyncio.Lock | None = None  # one operation at a time on the connection
        self._task: asyncio.Task[None] | None = None
        self._up: asyncio.Event | None = None
        # Channels whose LISTEN is on its way: later sinks wait for it (their caller may
        # re-read right after ``listen`` returns, so it must not return before).
        self._pending: dict[str, _Pending] = {}

    async def open(self, timeout_s: float = 10.0) -> None:
        """Start the reader and wait (bounded) for its first connection; a database that
        is away is not an error here: ``listen`` reports it."""
        @aio
        async def _open() -> None:
            self._lock = asyncio.Lock()
            self._up = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run_forever())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._up.wait(), timeout_s)
        await _open()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_task(task)

    def _deliver(self, _conn: object, _pid: int, channel: str, payload: str) -> None:
        self.sinks.deliver(channel, payload)

    async def _connect(self) -> asyncpg.Connection:
        conn = await asyncpg.connect(self.dsn, timeout=10,
                                     server_settings={"application_name": APP_NAME})
        for channel in self.sinks.channels():
            await conn.add_listener(channel, self._deliver)
        return conn

    async def _run_forever(self) -> None:
        assert self._lock is not None and self._up is not None
        backoff = 0.1
        while True:
            lost = asyncio.Event()
            try:
                async with self._lock:
                    self._conn = await self._connect()
                self._conn.add_termination_listener(partial(_set, lost))
                resync = not self.healthy and bool(self.sinks)
                self.healthy = True
                self._up.set()
                backoff = 0.1
                if resync:
                    self.sinks.broadcast(RESYNC)
                while True:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), self.ping_s)
                    async with self._lock:  # a silent half-open socket shows here
                        await self._conn.fetchval("SELECT 1", timeout=self.ping_s)
            except asyncio.CancelledError:
                await self._drop()
                raise
            except Exception as exc:  # noqa: BLE001  this loop is the reader's restart policy
                if self.healthy:
                    log.warning("postgres.listen_lost", error=repr(exc))
                self.healthy = False
                await self._drop()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()

    async def listen(self, channel: str, sink: Sink) -> None:
        """Register ``sink``; returns once the channel is listened on. ``StoreUnavailable``
        (and ``sink`` not registered) when the connection is down."""
        with self.sinks.registering(channel, sink) as first:
            if not first:
                pending = self._pending.get(channel)
                if pending is not None:  # another caller's LISTEN is on its way
                    await pending.done.wait()
                    if not pending.ok:
                        raise StoreUnavailable("database unavailable (listen): failed")
                return
            conn, lock = self._conn, self._lock
            if conn is None or lock is None or not self.healthy:
                raise StoreUnavailable("database unavailable (listen): not connected")

            @aio
            async def _listen() -> None:
                async with lock:
                    await conn.add_listener(channel, self._deliver)
            pending = self._pending[channel] = _Pending()
            try:
                await _listen()
                pending.ok = True
            except _UNAVAILABLE as exc:
                raise StoreUnavailable(f"database unavailable (listen): {exc}") from exc
            finally:
                del self._pending[channel]
                pending.done.set()

    async def unlisten(self, channel: str, sink: Sink) -> None:
        if not self.sinks.forget(channel, sink):
            return
        conn, lock = self._conn, self._lock
        if conn is None or lock is None or not self.healthy:
            return  # the next connection listens only on what is registered

        @aio
        async def _unlisten() -> None:
            async with lock:
                await conn.remove_listener(channel, self._deliver)
        try:
            await _unlisten()
        except _UNAVAILABLE as exc:
            log.info("postgres.unlisten_failed", channel=channel, error=repr(exc))
