"""A run world for the RunStore and CronStore contracts: threads, assistants, runs and
crons sharing one database, in memory or in PostgreSQL.

Import the fixture into a test module (``from tests.contract.worlds import
world_fixture  # noqa: F401``) and take ``world`` as an argument. Each test gets a fresh
world with one user assistant (``USER_ASSISTANT``, owned by alice) and the "agent"
graph's system assistant.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from aegra.adapters.langgraph.schema import ensure_langgraph_tables
from aegra.adapters.memory.assistants import MemoryAssistants
from aegra.adapters.memory.crons import MemoryCrons
from aegra.adapters.memory.run_store import MemoryRuns
from aegra.adapters.memory.threads import MemoryThreads
from aegra.adapters.postgres import migrate
from aegra.adapters.postgres.assistants import PgAssistants
from aegra.adapters.postgres.crons import PgCrons
from aegra.adapters.postgres.runs import PgRuns
from aegra.adapters.postgres.threads import PgThreads
from aegra.domain.assistants import SYSTEM_METADATA, NewAssistant, default_assistant_id
from aegra.domain.errors import NotFound
from aegra.domain.ports import AssistantLookup
from tests.contract.support import pg_pool

GRAPHS = ["agent", "other"]
USER_ASSISTANT = "5e0a7d2c-1111-4a2b-9c3d-000000000001"
SYSTEM_ASSISTANT = default_assistant_id("agent")
ALICE = {"owner": "alice"}
BOB = {"owner": "bob"}


def tid() -> str:
    return str(uuid.uuid4())


def lookup(assistant_id: str = USER_ASSISTANT, build: Any = None) -> AssistantLookup:
    return AssistantLookup(
        assistant_id=assistant_id, graph_ids=GRAPHS,
        missing=NotFound(f"Assistant '{assistant_id}' not found"),
        build=build or (lambda row: {"config": row["config"], "graph": row["graph_id"]}))


class World:
    def __init__(self, threads: Any, assistants: Any, runs: Any, crons: Any) -> None:
        self.threads = threads
        self.assistants = assistants
        self.runs = runs
        self.crons = crons

    async def seed(self) -> None:
        for assistant_id, metadata, config in (
                (USER_ASSISTANT, dict(ALICE), {"tags": ["from-assistant"]}),
                (SYSTEM_ASSISTANT, dict(SYSTEM_METADATA), {})):
            await self.assistants.create(NewAssistant(
                assistant_id=assistant_id, graph_id="agent", name="a", description=None,
                config=config, context={}, metadata=metadata))

    async def thread(self, metadata: dict[str, Any] | None = None) -> str:
        thread_id = tid()
        await self.threads.create(thread_id, dict(metadata or ALICE), None, "raise")
        return thread_id

    async def status(self, thread_id: str) -> str:
        return str((await self.threads.get(thread_id))["status"])


def memory_world() -> World:
    threads, assistants = MemoryThreads(), MemoryAssistants(GRAPHS)
    runs = MemoryRuns(threads, assistants)
    return World(threads, assistants, runs, MemoryCrons(runs, GRAPHS))


@pytest.fixture(name="world", params=["memory", "postgres"])
def world_fixture(request: pytest.FixtureRequest) -> Any:
    """An async context manager factory yielding a seeded ``World``."""
    dsn = None
    if request.param == "postgres":
        dsn = request.getfixturevalue("database_url")
        migrate.ensure_migrated(dsn)
        ensure_langgraph_tables(dsn)  # deleting a thread takes its checkpoints

    @asynccontextmanager
    async def open_world() -> AsyncIterator[World]:
        if dsn is None:
            w = memory_world()
            await w.seed()
            yield w
            return
        async with pg_pool(dsn, max_size=3) as pool:
            w = World(PgThreads(pool), PgAssistants(pool, GRAPHS), PgRuns(pool),
                      PgCrons(pool, GRAPHS))
            await w.seed()
            yield w

    return open_world
