"""Runs through the real SDK: wait, stream, background + join, list/get, stateless."""

from __future__ import annotations

import asyncio

from langgraph_sdk import get_client

from tests.e2e.conftest import base_env


def test_wait_stream_background_join(start_server, database_url):
    server = start_server(base_env(database_url))

    async def scenario():
        client = get_client(url=server.url)
        thread = await client.threads.create()
        tid = thread["thread_id"]
        result = await client.runs.wait(tid, "agent", input={"messages": [
            {"role": "user", "content": "hi"}]})
        assert result["messages"][-1]["content"] == "echo: hi"
        assert result["steps"] == 2

        parts = [p async for p in client.runs.stream(
            tid, "agent", input={"messages": [{"role": "user", "content": "again"}]},
            stream_mode=["values", "updates"])]
        names = [p.event for p in parts]
        assert names[0] == "metadata"
        assert parts[0].data["attempt"] == 1
        assert names.count("updates") == 2 and "values" in names
        assert names[-1] == "end"
        assert all(p.id and p.id.startswith(parts[0].data["run_id"]) for p in parts)

        run = await client.runs.create(tid, "agent", input={"messages": [
            {"role": "user", "content": "bg"}]}, metadata={"source": "test"})
        assert run["status"] == "pending" and run["metadata"] == {"source": "test"}
        joined = await client.runs.join(tid, run["run_id"])
        assert joined["messages"][-1]["content"] == "echo: bg"
        fetched = await client.runs.get(tid, run["run_id"])
        assert fetched["status"] == "success"
        listed = await client.runs.list(tid)
        assert len(listed) == 3 and listed[0]["run_id"] == run["run_id"]
        thread = await client.threads.get(tid)
        assert thread["status"] == "idle"
        assert thread["values"]["messages"][-1]["content"] == "echo: bg"

        stateless = await client.runs.wait(None, "agent", input={"messages": [
            {"role": "user", "content": "solo"}]})
        assert stateless["messages"][-1]["content"] == "echo: solo"

    asyncio.run(scenario())
    import httpx

    metrics = httpx.get(server.url + "/metrics").text
    assert 'aegra_runs_by_status{status="success"} 3.0' in metrics
    assert "aegra_queue_depth 0.0" in metrics
    assert "aegra_active_runs 0.0" in metrics
