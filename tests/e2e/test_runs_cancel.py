"""Cancel (interrupt / rollback, wait or not), bulk cancel and the four multitask
strategies on a busy thread, through the SDK against one ``aegra serve``.

The ``slow`` graph's node ``one`` sleeps ``first`` seconds and the others ``delay``, so a
test waits for one checkpoint of a run, then acts while node ``two`` sleeps. Statuses
and thread states were checked against the ``langgraph dev`` oracle with the same calls.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import ConflictError, NotFoundError

from tests.e2e.runs_support import module_server, show_logs_on_failure, until, wait_status

FAST = {"delay": 0.01}


@pytest.fixture(scope="module")
def server(pg_admin_dsn, tmp_path_factory):
    yield from module_server(pg_admin_dsn, tmp_path_factory,
                             AEGRA__HTTP__KEEPALIVE_INTERVAL_S="0.5")


@pytest.fixture(autouse=True)
def _logs(request, server):
    yield from show_logs_on_failure(request, server)


def slow(tag: str, first: float = 0.05, delay: float = 30) -> dict:
    return {"first": first, "delay": delay, "tag": tag}


async def trail(client, tid) -> list[str]:
    return (await client.threads.get_state(tid))["values"].get("trail", [])


async def until_step(client, tid, step: str) -> None:
    async def check():
        return step in await trail(client, tid)
    await until(check)


def test_cancel_interrupt_then_rollback(server):
    async def scenario():
        client = get_client(url=server.url)
        tid = (await client.threads.create())["thread_id"]
        await client.runs.wait(tid, "slow", input={**FAST, "tag": "a"})
        before = await trail(client, tid)
        assert before == ["one:a", "two:a", "three:a"]

        # interrupt without waiting: the checkpoints written so far stay.
        run = await client.runs.create(tid, "slow", input=slow("b"))
        await until_step(client, tid, "one:b")
        await client.runs.cancel(tid, run["run_id"])
        await wait_status(client, tid, run["run_id"], {"interrupted"})
        assert await trail(client, tid) == [*before, "one:b"]
        # As on the platform: the thread shows the stopped checkpoint, with "two" pending.
        thread = await until(lambda: _thread_if(client, tid, "interrupted"))
        assert thread["values"]["trail"] == [*before, "one:b"]
        assert (await client.threads.get_state(tid))["next"] == ["two"]
        assert await client.runs.join(tid, run["run_id"]) == thread["values"]

        # interrupt and wait: settled (status final) when cancel returns.
        run = await client.runs.create(tid, "slow", input=slow("c"))
        await until_step(client, tid, "one:c")
        await client.runs.cancel(tid, run["run_id"], wait=True)
        assert (await client.runs.get(tid, run["run_id"]))["status"] == "interrupted"
        kept = await trail(client, tid)
        assert kept[-1] == "one:c"

        # rollback: the run and every checkpoint it wrote are gone.
        run = await client.runs.create(tid, "slow", input=slow("d"))
        await until_step(client, tid, "one:d")
        await client.runs.cancel(tid, run["run_id"], wait=True, action="rollback")
        with pytest.raises(NotFoundError):
            await client.runs.get(tid, run["run_id"])
        assert await trail(client, tid) == kept
        history = await client.threads.get_history(tid, limit=100)
        assert all(h["metadata"].get("run_id") != run["run_id"] for h in history)
        assert [r["status"] for r in await client.runs.list(tid)] == [
            "interrupted", "interrupted", "success"]

        # a pending run cancelled with rollback simply disappears; the thread is free.
        blocker = await client.runs.create(tid, "slow", input=slow("e"))
        queued = await client.runs.create(tid, "slow", input=FAST,
                                          multitask_strategy="enqueue")
        await client.runs.cancel(tid, queued["run_id"], action="rollback")
        with pytest.raises(NotFoundError):
            await client.runs.get(tid, queued["run_id"])
        await client.runs.cancel(tid, blocker["run_id"], wait=True)
        # Cancelling a finished run is a no-op (the platform answers 404 here instead).
        await client.runs.cancel(tid, blocker["run_id"])
        assert (await client.runs.get(tid, blocker["run_id"]))["status"] == "interrupted"

    asyncio.run(scenario())


async def _thread_if(client, tid, status):
    thread = await client.threads.get(tid)
    return thread if thread["status"] == status else None


def test_cancel_many(server):
    async def scenario():
        client = get_client(url=server.url)
        t1, t2, t3 = [(await client.threads.create())["thread_id"] for _ in range(3)]
        r1 = await client.runs.create(t1, "slow", input=slow("1"))
        q1 = await client.runs.create(t1, "slow", input=FAST, multitask_strategy="enqueue")
        r2 = await client.runs.create(t2, "slow", input=slow("2"))
        r3 = await client.runs.create(t3, "slow", input=slow("3"))
        await wait_status(client, t2, r2["run_id"], {"running"})

        await client.runs.cancel_many(thread_id=t1)
        for rid in (r1["run_id"], q1["run_id"]):
            await wait_status(client, t1, rid, {"interrupted"})
        await client.runs.cancel_many(run_ids=[r2["run_id"]], action="rollback")
        await until(lambda: _gone(client, t2, r2["run_id"]))
        assert (await client.runs.get(t3, r3["run_id"]))["status"] in ("pending", "running")
        await client.runs.cancel_many(status="all")
        await wait_status(client, t3, r3["run_id"], {"interrupted"})
        for tid in (t1, t2, t3):
            assert (await client.threads.get(tid))["status"] != "busy"

    asyncio.run(scenario())


async def _gone(client, tid, rid) -> bool:
    try:
        await client.runs.get(tid, rid)
    except NotFoundError:
        return True
    return False


def test_multitask_strategies(server):
    async def reject(client, tid):
        first = await client.runs.create(tid, "slow", input={"delay": 0.2, "tag": "1"})
        with pytest.raises(ConflictError):
            await client.runs.create(tid, "slow", input=FAST, multitask_strategy="reject")
        # runs.wait reads through the SDK's reconnecting path: a bare httpx error.
        with pytest.raises(httpx.HTTPStatusError) as refused:
            await client.runs.wait(tid, "slow", input=FAST, multitask_strategy="reject")
        assert refused.value.response.status_code == 409
        await client.runs.join(tid, first["run_id"])
        assert await trail(client, tid) == ["one:1", "two:1", "three:1"]

    async def interrupt(client, tid):
        first = await client.runs.create(tid, "slow", input=slow("1"))
        await until_step(client, tid, "one:1")
        second = await client.runs.create(tid, "slow", input={**FAST, "tag": "2"},
                                          multitask_strategy="interrupt")
        await client.runs.join(tid, second["run_id"])
        assert (await client.runs.get(tid, first["run_id"]))["status"] == "interrupted"
        assert (await client.runs.get(tid, second["run_id"]))["status"] == "success"
        assert await trail(client, tid) == ["one:1", "one:2", "two:2", "three:2"]

    async def rollback(client, tid):
        first = await client.runs.create(tid, "slow", input=slow("1"))
        await until_step(client, tid, "one:1")
        second = await client.runs.create(tid, "slow", input={**FAST, "tag": "2"},
                                          multitask_strategy="rollback")
        await client.runs.join(tid, second["run_id"])
        with pytest.raises(NotFoundError):
            await client.runs.get(tid, first["run_id"])
        assert await trail(client, tid) == ["one:2", "two:2", "three:2"]

    async def enqueue(client, tid):
        runs = [await client.runs.create(tid, "slow", input={"delay": 0.1, "tag": "1"})]
        for tag in ("2", "3"):
            runs.append(await client.runs.create(tid, "slow", input={**FAST, "tag": tag},
                                                 multitask_strategy="enqueue"))
        assert (await client.runs.get(tid, runs[2]["run_id"]))["status"] == "pending"
        await client.runs.join(tid, runs[2]["run_id"])
        assert [await _status(client, tid, r) for r in runs] == ["success"] * 3
        assert await trail(client, tid) == [f"{n}:{t}" for t in "123"
                                            for n in ("one", "two", "three")]

    async def default(client, tid):
        # No strategy: enqueued behind the thread's run, as on the platform (0.16.7).
        first = await client.runs.create(tid, "slow", input=slow("1"))
        await until_step(client, tid, "one:1")
        second = await client.runs.create(tid, "slow", input={**FAST, "tag": "2"})
        assert second["multitask_strategy"] == "enqueue"
        assert (await client.runs.get(tid, second["run_id"]))["status"] == "pending"
        assert (await client.runs.get(tid, first["run_id"]))["status"] == "running"
        await client.runs.cancel(tid, first["run_id"])  # it would sleep 30 s in ``two``
        await client.runs.join(tid, second["run_id"])
        assert (await client.runs.get(tid, second["run_id"]))["status"] == "success"
        assert await trail(client, tid) == ["one:1", "one:2", "two:2", "three:2"]

    async def scenario():
        client = get_client(url=server.url)
        cases = (reject, interrupt, rollback, enqueue, default)
        tids = [(await client.threads.create())["thread_id"] for _ in cases]
        await asyncio.gather(*(case(client, tid) for case, tid in zip(cases, tids, strict=True)))
        for tid in tids:
            assert (await client.threads.get(tid))["status"] == "idle"

    asyncio.run(scenario())


async def _status(client, tid, run):
    return (await client.runs.get(tid, run["run_id"]))["status"]


def test_cancel_right_after_create(server):
    """Cancels landing while runs are being claimed and started. This used to lose
    some: a deadlock between the cancel and the claim (500 to the caller), and a cancel
    swallowed on the asyncio side (the graph ran to completion and ended ``success``)."""
    async def one(client, i):
        tid = (await client.threads.create())["thread_id"]
        run = await client.runs.create(tid, "slow", input=slow(str(i), first=30))
        await asyncio.sleep((i % 10) * 0.003)
        await client.runs.cancel(tid, run["run_id"], action="interrupt")
        return await wait_status(client, tid, run["run_id"], {"interrupted", "success"},
                                 within=8)

    async def scenario():
        client = get_client(url=server.url)
        statuses = await asyncio.gather(*(one(client, i) for i in range(24)))
        assert statuses == ["interrupted"] * 24

    asyncio.run(scenario())
