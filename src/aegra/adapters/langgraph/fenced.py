"""LangGraph's official PostgreSQL checkpointer, fenced by the run's claim
(docs/architecture.md, Design decisions).

Every checkpoint write made while a run executes carries the run's claim in the same
transaction: ``FOR SHARE`` on the run row where ``claimed_by`` and ``attempt`` still
match, or the transaction aborts (division by zero on an empty match) and nothing is
written. A worker that lost its lease therefore cannot write a single checkpoint more;
the run sees ``FencedOut`` and is cancelled locally.

The rest is about cost; what is written is LangGraph's:

- the class-wide asyncio lock is not taken (it serializes every checkpoint operation of
  the process, which is only needed for a single shared connection, not a pool);
- a write is one pipelined transaction: BEGIN, fence, inserts and COMMIT leave in one
  round trip. An explicit transaction rather than the pipeline's implicit one, so that an
  exception or a cancellation inside the block rolls back instead of committing what was
  already queued (part of an ``executemany``, say; the official saver would commit it);
- group commit: a run's ``aput`` and ``aput_writes`` calls that arrive while one of its
  writes is in flight are sent together in the next transaction, in the order they were
  made; a transaction carries whole calls only, so a group is all or nothing, like a
  single write. A call returns once its own statements are committed;
- write-behind, for runs with LangGraph's default ``durability="async"`` (its loop does
  not wait for its writes either): a call returns once queued, the queue is sent after
  at most ``LINGER_S`` (so quick steps share a transaction: a no-op run's four writes take
  one), and the runner ``settle``s the run's writes before the run counts as finished.
  A crash loses what was not yet sent, as ``async`` durability allows: completed steps
  whose checkpoint was not committed run again on resume.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

import psycopg
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
)
from langgraph.checkpoint.postgres import _ainternal
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.base import SerializerProtocol
from psycopg.abc import Params, QueryNoTemplate
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow, dict_row

Fence = tuple[str, str, int]
# (run_id, owner, attempt) of the run executing in this asyncio context, if any.
FENCE: ContextVar[Fence | None] = ContextVar("aegra_fence", default=None)
# Set while LangGraph's aput/aput_writes runs: their statements are recorded, not sent.
_GROUPED: ContextVar[bool] = ContextVar("aegra_grouped_write", default=False)
# Write-behind: a write returns once queued; the run settles them before it finishes.
_BEHIND: ContextVar[bool] = ContextVar("aegra_write_behind", default=False)
# How long a write-behind write waits for company before its transaction starts: steps
# that follow each other quickly share one; bounds how stale the database may be.
LINGER_S = 0.02

_FENCE_SQL = (
    "SELECT 1 / count(*) FROM (SELECT 1 FROM runs WHERE run_id = %s AND claimed_by = %s "
    "AND attempt = %s AND status = 'running' FOR SHARE) AS claim"
)

# (executemany?, query, params) as the base class would have sent it: params is Params
# (or None) for execute, a list of Params for executemany.
Statement = tuple[bool, QueryNoTemplate, Any]


class FencedOut(Exception):
    """This worker no longer holds the run: the checkpoint write was refused."""


class _Recorder:
    """Stands in for the cursor inside LangGraph's write methods: keeps the statements."""

    def __init__(self) -> None:
        self.statements: list[Statement] = []

    async def execute(self, query: QueryNoTemplate, params: Params | None = None) -> None:
        self.statements.append((False, query, params))

    async def executemany(self, query: QueryNoTemplate, params_seq: Iterable[Params]) -> None:
        self.statements.append((True, query, list(params_seq)))


class _Group:
    """One run's writes waiting for, or in, a transaction."""

    __slots__ = ("queue", "task", "timer", "error", "released")

    def __init__(self) -> None:
        # Each call's statements, with the future its caller waits on (None: write-behind).
        self.queue: list[tuple[list[Statement], asyncio.Future[None] | None]] = []
        self.task: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None  # a write-behind send not yet started
        self.error: Exception | None = None  # the first failed send; later calls fail fast
        self.released = False  # the run is over: nobody will settle() this group


class FencedSaver(AsyncPostgresSaver):
    def __init__(self, conn: _ainternal.Conn, pipe: psycopg.AsyncPipeline | None = None,
                 serde: SerializerProtocol | None = None) -> None:
        super().__init__(conn, pipe, serde)
        self._groups: dict[Fence, _Group] = {}

    async def aput(self, config: RunnableConfig, checkpoint: Checkpoint,
                   metadata: CheckpointMetadata, new_versions: ChannelVersions
                   ) -> RunnableConfig:
        token = _GROUPED.set(True)
        try:
            return await super().aput(config, checkpoint, metadata, new_versions)
        finally:
            _GROUPED.reset(token)

    async def aput_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]],
                          task_id: str, task_path: str = "") -> None:
        """The base class's statements, serialized on the loop rather than in a thread.

        The base class hands ``_dump_writes`` to ``asyncio.to_thread``; under trio-asyncio
        that is a Trio task, a worker thread (named and renamed) and two loop wake-ups per
        call, which cost more than a step's serialization (``bench/README.md``, issue 11).
        LangGraph's other async savers serialize on the loop too. The statements are the
        base class's: a contract test holds the rows to the official saver's.
        """
        conf = config["configurable"]
        query = (self.UPSERT_CHECKPOINT_WRITES_SQL
                 if all(channel in WRITES_IDX_MAP for channel, _ in writes)
                 else self.INSERT_CHECKPOINT_WRITES_SQL)
        params = self._dump_writes(conf["thread_id"], conf["checkpoint_ns"],
                                   conf["checkpoint_id"], task_id, task_path, writes)
        token = _GROUPED.set(True)
        try:
            async with self._cursor(pipeline=True) as cur:
                await cur.executemany(query, params)
        finally:
            _GROUPED.reset(token)

    @asynccontextmanager
    async def _cursor(self, *, pipeline: bool = False) -> AsyncIterator[Any]:
        fence = FENCE.get()
        if pipeline and fence is not None and _GROUPED.get():
            recorder = _Recorder()
            yield recorder  # an exception in the block sends nothing
            await self._commit(fence, recorder.statements)
            return
        async with _ainternal.get_connection(self.conn) as conn:
            if not pipeline:
                async with conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur
                return
            async with _fenced_transaction(conn, fence) as cur:
                yield cur

    async def _commit(self, fence: Fence, statements: list[Statement]) -> None:
        """Queue a call's statements on its run's group; return once they are committed
        (at once with write-behind: ``settle`` then waits for them)."""
        loop = asyncio.get_running_loop()
        group = self._groups.get(fence)
        if group is None:
            group = self._groups[fence] = _Group()
        if group.error is not None:
            raise group.error
        behind = _BEHIND.get()
        done: asyncio.Future[None] | None = None if behind else loop.create_future()
        group.queue.append((statements, done))
        if not behind:
            self._kick(fence, group)
        elif group.task is None and group.timer is None:
            group.timer = loop.call_later(LINGER_S, self._kick, fence, group)
        # A cancelled caller cancels only its wait: once queued, its statements are sent
        # whole with the rest of the group (fenced, so never after the claim is gone).
        if done is not None:
            await done

    async def settle(self, fence: Fence) -> None:
        """Wait until every write queued for this run is committed; raise the first
        failure (``FencedOut`` when the claim was lost)."""
        group = self._groups.get(fence)
        if group is None:
            return
        self._kick(fence, group)
        while group.task is not None:
            await asyncio.shield(group.task)  # a cancelled caller does not stop the sends
        if self._groups.get(fence) is group and group.task is None:
            del self._groups[fence]
        if group.error is not None:
            raise group.error

    def _kick(self, fence: Fence, group: _Group) -> None:
        """Start sending the group's queue now, unless a send is under way."""
        if group.timer is not None:
            group.timer.cancel()
            group.timer = None
        if group.task is None and group.queue:
            group.task = asyncio.get_running_loop().create_task(self._flush(fence, group))

    def release(self, fence: Fence) -> None:
        """The run is over (settled or cancelled): forget its group once it is sent."""
        group = self._groups.get(fence)
        if group is None:
            return
        group.released = True
        if group.task is None and group.timer is None:
            del self._groups[fence]

    async def _flush(self, fence: Fence, group: _Group) -> None:
        try:
            while group.queue:
                batch, group.queue = group.queue, []
                try:
                    if group.error is not None:
                        raise group.error
                    await self._send(fence, [s for stmts, _ in batch for s in stmts])
                except asyncio.CancelledError:
                    for _, done in batch:
                        if done is not None:
                            done.cancel()
                    raise
                except Exception as exc:
                    group.error = group.error or exc
                    for _, done in batch:
                        if done is not None and not done.done():
                            done.set_exception(exc)
                else:
                    for _, done in batch:
                        if done is not None and not done.done():
                            done.set_result(None)
        finally:
            for _, done in group.queue:  # only when the loop itself is going away
                if done is not None:
                    done.cancel()
            group.queue = []
            group.task = None
            # Kept while a failure waits for settle() to report it.
            if self._groups.get(fence) is group and (group.error is None or group.released):
                del self._groups[fence]

    async def _send(self, fence: Fence, statements: list[Statement]) -> None:
        async with _ainternal.get_connection(self.conn) as conn, \
                _fenced_transaction(conn, fence) as cur:
            for many, query, params in statements:
                if many:
                    await cur.executemany(query, params)
                else:
                    await cur.execute(query, params)


@asynccontextmanager
async def _fenced_transaction(conn: psycopg.AsyncConnection[Any], fence: Fence | None
                              ) -> AsyncIterator[psycopg.AsyncCursor[DictRow]]:
    """BEGIN, the fence, the block's statements and COMMIT in one round trip.

    The connection is in autocommit mode, so the transaction is spelt out as statements:
    psycopg's ``conn.transaction()`` would add a Sync (a round trip) after BEGIN and
    before COMMIT. COMMIT is queued only when the block ends normally; otherwise the
    pipeline's Sync leaves the transaction open and it is rolled back here, so nothing
    the block queued is committed (the pipeline's implicit transaction would be).
    """
    try:
        async with conn.pipeline(), conn.cursor(binary=True, row_factory=dict_row) as cur:
            await cur.execute("BEGIN")
            if fence is not None:
                await cur.execute(_FENCE_SQL, fence)
            yield cur
            await cur.execute("COMMIT")
    except psycopg.errors.DivisionByZero:
        raise FencedOut(f"run {fence[0] if fence else '?'}: claim lost") from None
    finally:
        status = conn.info.transaction_status
        if status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
            try:
                await conn.rollback()
            except psycopg.Error:
                pass  # the pool discards a connection it cannot reset


def fence(run_id: str, owner: str, attempt: int, *, write_behind: bool = False) -> Fence:
    """Mark the current asyncio context as executing this claim; returns the fence.

    ``write_behind`` (for LangGraph's ``durability="async"``, whose loop does not wait for
    its writes anyway): writes return once queued, in order, and the runner must
    ``settle`` the fence before the run counts as finished.
    """
    key = (run_id, owner, attempt)
    FENCE.set(key)
    _BEHIND.set(write_behind)
    return key
