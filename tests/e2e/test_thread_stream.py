"""Thread join streams and thread history through the Python SDK.

``threads.join_stream`` with a run stream mode gets each run's events of that mode, with
its lifecycle (opening ``metadata``, ``end``, the platform's ``run_done`` marker); with
``state_update`` it gets the thread's state after ``update_state``. History applies
``before`` (exclusive, in any of the clients' spellings) and then ``limit``, as the
``langgraph dev`` oracle does for the same calls.

A stream is known to be open once it delivered its first event: each scenario holds the
thread with a ``slow`` run (its first node sleeps a minute) and lets it go only then, so
nothing depends on timing.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from tests.e2e.runs_support import module_server, show_logs_on_failure

HI = {"messages": [{"role": "user", "content": "hi"}]}
HOLD = {"first": 60, "tag": "held"}  # holds the thread until cancelled


@pytest.fixture(scope="module")
def server(pg_admin_dsn, tmp_path_factory):
    yield from module_server(pg_admin_dsn, tmp_path_factory)


@pytest.fixture(autouse=True)
def _logs(request, server):
    yield from show_logs_on_failure(request, server)


def by_run(parts: list[Any]) -> list[tuple[str, list[str]]]:
    """(run id, event names) per run, cut at each run_done marker (kept, as the last)."""
    out: list[tuple[str, list[str]]] = []
    names: list[str] = []
    for part in parts:
        names.append(part.event)
        if part.event == "metadata" and part.data.get("status") == "run_done":
            out.append((part.data["run_id"], names))
            names = []
    assert names == [], names  # the stream ends after a marker
    return out


def test_join_stream_sends_each_run_in_the_modes_asked(server):
    async def scenario() -> None:
        c = get_client(url=server.url)
        tid = (await c.threads.create())["thread_id"]
        held = await c.runs.create(tid, "slow", input=HOLD)
        # Queued behind the held run: it starts while the stream follows the thread.
        queued = await c.runs.create(tid, "slow", input={"first": 0, "delay": 0, "tag": "q"},
                                     stream_mode=["values", "updates"],
                                     multitask_strategy="enqueue")
        parts: list[Any] = []
        async for part in await c.threads.join_stream(tid, stream_mode="values"):
            parts.append(part)
            if len(parts) == 1:  # open: let the held run go
                assert part.data["run_id"] == held["run_id"]
                await c.runs.cancel(tid, held["run_id"])
        runs = by_run(parts)
        assert [r for r, _ in runs] == [held["run_id"], queued["run_id"]]
        assert runs[0][1] == ["metadata", "values", "end", "metadata"]
        assert runs[1][1] == ["metadata", "values", "values", "values", "values", "end",
                              "metadata"]  # no `updates`: not asked for
        second = parts[len(runs[0][1]):]
        assert second[0].data["run_id"] == queued["run_id"] and second[0].id
        assert second[-3].data["trail"] == ["one:q", "two:q", "three:q"]
        assert second[-2].data == {"status": "success"}
        # The ids are the runs' own: a client resumes from the last one it saw.
        assert second[-3].id == f"{queued['run_id']}_event_8"  # 3, 5, 7: updates

        # A reconnect resumes with Last-Event-ID inside that run and gets the runs after
        # it, finished meanwhile or not (here lifecycle only).
        again = [p async for p in await c.threads.join_stream(
            tid, stream_mode="lifecycle", last_event_id=f"{held['run_id']}_event_0")]
        assert [names for _, names in by_run(again)] == [["metadata", "end", "metadata"]] * 2
    asyncio.run(scenario())


def test_join_stream_sends_the_state_after_update_state(server):
    async def scenario() -> None:
        c = get_client(url=server.url)
        tid = (await c.threads.create())["thread_id"]
        held = await c.runs.create(tid, "slow", input=HOLD)
        parts: list[Any] = []
        async for part in await c.threads.join_stream(tid, stream_mode=["lifecycle",
                                                                  "state_update"]):
            parts.append(part)
            if len(parts) == 1:  # open: end the run, then write the state
                await c.runs.cancel(tid, held["run_id"], wait=True)
                await c.threads.update_state(tid, {"tag": "edited"}, as_node="one")
            if part.event == "state_update":
                break  # the stream would stay open for the next update
        assert [p.event for p in parts] == ["metadata", "end", "metadata", "state_update"]
        update = parts[-1].data
        assert update["thread_id"] == tid
        assert update["state"] == await c.threads.get_state(tid)
        assert update["state"]["values"]["tag"] == "edited"
        assert update["state"]["next"] == ["two"]
    asyncio.run(scenario())


def test_history_applies_before_then_limit(server):
    async def scenario() -> None:
        c = get_client(url=server.url)
        tid = (await c.threads.create())["thread_id"]
        for _ in range(2):
            await c.runs.wait(tid, "agent", input=HI)
        full = [h["checkpoint"] for h in await c.threads.get_history(tid, limit=100)]
        assert len(full) == 8  # input, think, reply and the run's start, twice
        ref = full[1]
        spellings = (ref["checkpoint_id"], ref,  # Python SDK: an id or a checkpoint
                     {"configurable": {"checkpoint_id": ref["checkpoint_id"]}})  # JS
        for before in spellings:
            got = await c.threads.get_history(tid, limit=2, before=before)  # type: ignore[arg-type]
            assert [h["checkpoint"] for h in got] == full[2:4], before
        assert await c.threads.get_history(tid, before=full[-1]) == []
        async with httpx.AsyncClient(base_url=server.url) as http:
            got = (await http.get(f"/threads/{tid}/history",
                                  params={"limit": 2, "before": ref["checkpoint_id"]})).json()
            assert [h["checkpoint"] for h in got] == full[2:4]
            # Without a limit the platform answers one state, both ways.
            for response in (await http.post(f"/threads/{tid}/history", json={}),
                             await http.get(f"/threads/{tid}/history")):
                assert [h["checkpoint"] for h in response.json()] == full[:1]
    asyncio.run(scenario())
