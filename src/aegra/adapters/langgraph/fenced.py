"""LangGraph's official PostgreSQL checkpointer, fenced by the run's claim (DESIGN §3).

Every checkpoint write made while a run executes carries the run's claim in the same
transaction: ``FOR SHARE`` on the run row where ``claimed_by`` and ``attempt`` still
match, or the transaction aborts (division by zero on an empty match) and nothing is
written. A worker that lost its lease therefore cannot write a single checkpoint more;
the run sees ``FencedOut`` and is cancelled locally.

Two more changes from the base class, both about cost: the class-wide asyncio lock is not
taken (it serializes every checkpoint operation of the process, which is only needed for
a single shared connection, not a pool), and a write is one transaction instead of one
autocommit transaction per statement.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

import psycopg
from langgraph.checkpoint.postgres import _ainternal
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg.rows import DictRow, dict_row

# (run_id, owner, attempt) of the run executing in this asyncio context, if any.
FENCE: ContextVar[tuple[str, str, int] | None] = ContextVar("aegra_fence", default=None)

_FENCE_SQL = (
    "SELECT 1 / count(*) FROM (SELECT 1 FROM runs WHERE run_id = %s AND claimed_by = %s "
    "AND attempt = %s AND status = 'running' FOR SHARE) AS claim"
)


class FencedOut(Exception):
    """This worker no longer holds the run: the checkpoint write was refused."""


class FencedSaver(AsyncPostgresSaver):
    @asynccontextmanager
    async def _cursor(self, *, pipeline: bool = False
                      ) -> AsyncIterator[psycopg.AsyncCursor[DictRow]]:
        async with _ainternal.get_connection(self.conn) as conn:
            if not pipeline:
                async with conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur
                return
            fence = FENCE.get()
            try:
                async with conn.transaction(), conn.cursor(binary=True,
                                                           row_factory=dict_row) as cur:
                    if fence is not None:
                        await cur.execute(_FENCE_SQL, fence)
                    yield cur
            except psycopg.errors.DivisionByZero:
                raise FencedOut(f"run {fence[0] if fence else '?'}: claim lost") from None


def fence(run_id: str, owner: str, attempt: int) -> Any:
    """Mark the current asyncio context as executing this claim (returns the reset token)."""
    return FENCE.set((run_id, owner, attempt))
