"""Run options through the official SDK: after_seconds, if_not_exists, checkpoint forks,
command update/goto, durability, multitask enqueue order, metadata on the run.

Expected results follow LangGraph's own semantics for the same inputs (checked
in-process with an in-memory checkpointer for goto and durability).
"""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import NotFoundError

from tests.e2e.runs_support import module_server, show_logs_on_failure

HI = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def server(pg_admin_dsn, tmp_path_factory):
    yield from module_server(pg_admin_dsn, tmp_path_factory,
                             AEGRA__HTTP__KEEPALIVE_INTERVAL_S="0.5")


@pytest.fixture(autouse=True)
def _logs(request, server):
    yield from show_logs_on_failure(request, server)


def test_after_seconds_holds_the_run_pending_until_then(server):
    async def scenario():
        client = get_client(url=server.url)
        tid = (await client.threads.create())["thread_id"]
        started = time.monotonic()
        run = await client.runs.create(tid, "slow", input={"delay": 0.01},
                                       after_seconds=1.5, metadata={"k": "v"})
        assert run["status"] == "pending" and run["metadata"] == {"k": "v"}
        await asyncio.sleep(0.5)
        assert (await client.runs.get(tid, run["run_id"]))["status"] == "pending"
        await client.runs.join(tid, run["run_id"])
        took = time.monotonic() - started  # a lower bound: load can only make it later
        done = await client.runs.get(tid, run["run_id"])
        assert done["status"] == "success" and took >= 1.4
        assert done["metadata"] == {"k": "v"}

    asyncio.run(scenario())


def test_if_not_exists_create_makes_the_thread(server):
    async def scenario():
        client = get_client(url=server.url)
        tid = str(uuid.uuid4())
        # runs.wait reads the body as a stream: this SDK raises httpx's error for it.
        with pytest.raises((NotFoundError, httpx.HTTPStatusError)) as refused:
            await client.runs.wait(tid, "agent", input=HI)
        assert refused.value.response.status_code == 404
        result = await client.runs.wait(tid, "agent", input=HI, if_not_exists="create")
        assert result["messages"][-1]["content"] == "echo: hi"
        thread = await client.threads.get(tid)
        assert thread["status"] == "idle"
        assert thread["metadata"]["graph_id"] == "agent"

    asyncio.run(scenario())


def test_a_run_from_an_earlier_checkpoint_forks_the_thread(server):
    async def scenario():
        client = get_client(url=server.url)
        tid = (await client.threads.create())["thread_id"]
        await client.runs.wait(tid, "agent", input=HI)
        after_first = (await client.threads.get_state(tid))["checkpoint"]["checkpoint_id"]
        await client.runs.wait(tid, "agent", input=HI)
        assert len((await client.threads.get_state(tid))["values"]["messages"]) == 4
        forked = await client.runs.wait(
            tid, "agent", input={"messages": [{"role": "user", "content": "fork"}]},
            checkpoint_id=after_first)
        # The first run's two messages, then the fork's: the second run is not in it.
        assert [m["content"] for m in forked["messages"]] == [
            "hi", "echo: hi", "fork", "echo: fork"]
        history = await client.threads.get_history(tid, limit=100)
        # A branch: the second run and the fork both continue from the first run's end.
        children = [h for h in history if h["parent_checkpoint"] and
                    h["parent_checkpoint"]["checkpoint_id"] == after_first]
        assert len(children) == 2

    asyncio.run(scenario())


def test_command_update_and_goto(server):
    async def scenario():
        client = get_client(url=server.url)
        tid = (await client.threads.create())["thread_id"]
        first = await client.runs.wait(tid, "slow", input={"delay": 0.01, "tag": "a"})
        assert first["trail"] == ["one:a", "two:a", "three:a"]
        again = await client.runs.wait(tid, "slow",
                                       command={"update": {"tag": "x"}, "goto": "three"})
        assert again["trail"] == ["one:a", "two:a", "three:a", "three:x"]
        assert again["tag"] == "x"

    asyncio.run(scenario())


def test_durability_modes_all_finish_and_exit_saves_only_the_end(server):
    async def scenario():
        client = get_client(url=server.url)
        counts = {}
        for mode in ("sync", "async", "exit"):
            tid = (await client.threads.create())["thread_id"]
            result = await client.runs.wait(tid, "slow", input={"delay": 0.01, "tag": mode},
                                            durability=mode)
            assert result["trail"] == [f"one:{mode}", f"two:{mode}", f"three:{mode}"]
            state = await client.threads.get_state(tid)
            assert state["values"]["trail"] == result["trail"] and state["next"] == []
            counts[mode] = len(await client.threads.get_history(tid, limit=50))
        # One checkpoint per superstep when saving as it goes; only the last with "exit".
        assert counts["sync"] == counts["async"] == 5
        assert counts["exit"] == 1

    asyncio.run(scenario())


def test_enqueued_runs_run_in_order_one_at_a_time(server):
    async def scenario():
        client = get_client(url=server.url)
        tid = (await client.threads.create())["thread_id"]
        runs = [await client.runs.create(tid, "slow", input={"delay": 0.05, "tag": str(i)},
                                         multitask_strategy="enqueue") for i in range(3)]
        for run in runs:
            await client.runs.join(tid, run["run_id"])
        state = await client.threads.get_state(tid)
        assert state["values"]["trail"] == [f"{n}:{i}" for i in range(3)
                                            for n in ("one", "two", "three")]
        statuses = [(await client.runs.get(tid, r["run_id"]))["status"] for r in runs]
        assert statuses == ["success"] * 3

    asyncio.run(scenario())
