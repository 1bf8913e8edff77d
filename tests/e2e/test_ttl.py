"""Thread TTLs end to end: ``checkpointer.ttl`` stamps new threads, the sweeper deletes
expired ones (404 afterwards), never a thread whose run is still running, and reports
through /metrics and the ``ttl.sweep`` log line. One server, short intervals."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import psycopg
from langgraph_sdk import get_client
from langgraph_sdk.errors import NotFoundError

from tests.e2e.conftest import GRAPHS, base_env, write_project

DEFAULT_TTL = 0.02  # minutes: 1.2 s
RUN_TTL = 0.01  # 0.6 s, far shorter than the slow run below


async def _gone(client, thread_id: str, deadline_s: float = 15.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            await client.threads.get(thread_id)
        except NotFoundError:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"thread {thread_id} was not swept in {deadline_s}s")


async def _scenario(url: str) -> None:
    client = get_client(url=url)
    stamped = await client.threads.create()
    own = await client.threads.create(ttl={"ttl": 60, "strategy": "delete"})
    info = (await client.http.get(f"/threads/{stamped['thread_id']}",
                                  params={"include": "ttl"}))["ttl"]
    assert info["strategy"] == "delete" and info["ttl_minutes"] == DEFAULT_TTL
    assert "expires_at" in info

    # A run far longer than its thread's TTL: the thread stays while the run runs.
    raced = await client.threads.create(ttl=RUN_TTL)
    run = await client.runs.create(raced["thread_id"], "slow", input={"delay": 1.0})
    while (await client.runs.get(raced["thread_id"], run["run_id"]))["status"] in (
            "pending", "running"):
        await client.threads.get(raced["thread_id"])  # 404 here would fail the test
        await asyncio.sleep(0.1)
    assert (await client.runs.get(raced["thread_id"], run["run_id"]))["status"] == "success"

    await _gone(client, stamped["thread_id"])
    await _gone(client, raced["thread_id"])  # its clock restarted when the run ended
    assert (await client.threads.get(own["thread_id"]))["thread_id"] == own["thread_id"]


def test_thread_ttls_swept_but_never_under_a_run(start_server, database_url, tmp_path):
    write_project(tmp_path, graphs={"agent": f"{GRAPHS / 'echo.py'}:graph",
                                    "slow": f"{GRAPHS / 'slow.py'}:graph"},
                  checkpointer={"ttl": {"strategy": "delete", "default_ttl": DEFAULT_TTL,
                                        "sweep_interval_minutes": 60}})
    server = start_server(base_env(database_url, AEGRA__SWEEPER__INTERVAL_S="0.2"))
    asyncio.run(_scenario(server.url))
    text = httpx.get(server.url + "/metrics", timeout=5).text
    deleted = re.search(r'aegra_ttl_swept_total\{kind="threads_deleted"\} (\S+)', text)
    assert deleted and float(deleted.group(1)) >= 2
    runs = re.search(r'aegra_ttl_swept_total\{kind="runs"\} (\S+)', text)
    assert runs and float(runs.group(1)) >= 1
    assert '"ttl.sweep"' in server.logs()
    with psycopg.connect(database_url) as conn:  # the raced run went with its thread
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM thread").fetchone()[0] == 1
