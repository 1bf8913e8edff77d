"""Runs that end badly or early: BG_JOB_TIMEOUT_SECS, a graph that raises, a client that
goes away mid-stream (on_disconnect=cancel, joiners), and webhook delivery.

The server keeps the default 5 s keepalive so the disconnect test proves that hypercorn's
Trio worker delivers the disconnect itself (the run is cancelled long before a keepalive
write could fail). Statuses and events were checked against the ``langgraph dev`` oracle.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from langgraph_sdk import get_client

from tests.e2e.runs_support import module_server, show_logs_on_failure, until, wait_status

TIMEOUT_S = 2


@pytest.fixture(scope="module")
def server(pg_admin_dsn, tmp_path_factory):
    # The webhook receiver listens on loopback, which the default policy refuses.
    yield from module_server(pg_admin_dsn, tmp_path_factory,
                             project={"webhooks": {"url": {"allowed_domains": ["127.0.0.1"]}}},
                             BG_JOB_TIMEOUT_SECS=str(TIMEOUT_S))


@pytest.fixture(autouse=True)
def _logs(request, server):
    yield from show_logs_on_failure(request, server)


def test_timeout_and_graph_error(server):
    async def timed_out(client):
        tid = (await client.threads.create())["thread_id"]
        started = time.monotonic()
        parts = [p async for p in client.runs.stream(tid, "slow", input={"delay": 5},
                                                     stream_mode="updates")]
        assert time.monotonic() - started < TIMEOUT_S + 3
        assert [p.event for p in parts] == ["metadata", "error", "end"]
        assert parts[1].data["error"] == "TimeoutError"
        assert "BG_JOB_TIMEOUT_SECS" in parts[1].data["message"]
        assert parts[2].data == {"status": "timeout"}
        run = (await client.runs.list(tid))[0]
        assert run["status"] == "timeout"
        assert (await client.threads.get(tid))["status"] == "error"
        result = await client.runs.join(tid, run["run_id"])
        assert result["__error__"]["error"] == "TimeoutError"

    async def failed(client):
        tid = (await client.threads.create())["thread_id"]
        parts = [p async for p in client.runs.stream(tid, "fail", input={"text": "a"})]
        assert [p.event for p in parts] == ["metadata", "values", "values", "error", "end"]
        error = {"error": "ValueError", "message": "boom: ok"}
        assert parts[3].data == error and parts[4].data == {"status": "error"}
        run = (await client.runs.list(tid))[0]
        assert run["status"] == "error" and run["error_message"] == "boom: ok"
        thread = await client.threads.get(tid)
        assert thread["status"] == "error" and thread["values"] == {"text": "ok"}
        with pytest.raises(Exception, match="ValueError: boom: ok"):
            await client.runs.wait(tid, "fail", input={"text": "b"})
        assert await client.runs.wait(tid, "fail", input={"text": "c"},
                                      raise_error=False) == {"__error__": error}
        assert await client.runs.join(tid, run["run_id"]) == {"__error__": error}
        # The server is unharmed and the thread takes the next run.
        ok = await client.runs.wait(tid, "agent", input={"messages": [
            {"role": "user", "content": "still there?"}]})
        assert ok["messages"][-1]["content"] == "echo: still there?"
        assert (await client.threads.get(tid))["status"] == "idle"

    async def scenario():
        client = get_client(url=server.url)
        await asyncio.gather(timed_out(client), failed(client))

    asyncio.run(scenario())


def test_disconnects(server):
    async def open_and_drop(http, tid, **extra):
        """Start a stream, read its first event, then abort the connection."""
        body = {"assistant_id": "slow", "input": {"first": 0.05, "delay": 30},
                "stream_mode": ["custom"], **extra}  # no events after metadata
        async with http.stream("POST", f"/threads/{tid}/runs/stream", json=body) as r:
            assert r.status_code == 200
            lines = r.aiter_lines()
            assert await anext(lines) == "event: metadata"
            data = json.loads((await anext(lines)).removeprefix("data: "))
        return data["run_id"]  # leaving the block closes the unread response's socket

    async def scenario():
        client = get_client(url=server.url)
        t1, t2, t3 = [(await client.threads.create())["thread_id"] for _ in range(3)]
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            cancelled = await open_and_drop(http, t1, on_disconnect="cancel")
            continued = await open_and_drop(http, t2)  # the platform's default: continue
        started = time.monotonic()
        await wait_status(client, t1, cancelled, {"interrupted"}, within=3)
        assert time.monotonic() - started < 3  # well before a 5 s keepalive write
        assert (await client.runs.get(t2, continued))["status"] == "running"

        # A joiner that leaves never cancels the run, unless it asked to.
        run = await client.runs.create(t3, "slow", input={"first": 0.05, "delay": 30})
        async for _ in client.runs.join_stream(t3, run["run_id"]):
            break
        await asyncio.sleep(0.5)
        assert (await client.runs.get(t3, run["run_id"]))["status"] == "running"
        async for _ in client.runs.join_stream(t3, run["run_id"], cancel_on_disconnect=True):
            break
        await wait_status(client, t3, run["run_id"], {"interrupted"}, within=3)
        await client.runs.cancel(t2, continued, wait=True)

    asyncio.run(scenario())


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict] = []
    arrived = threading.Event()

    def do_POST(self) -> None:  # noqa: N802  (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        type(self).arrived.set()
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_webhook_delivery(server):
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"

    async def scenario():
        client = get_client(url=server.url)
        tid = (await client.threads.create())["thread_id"]
        run = await client.runs.create(tid, "agent", webhook=url, metadata={"k": "v"},
                                       input={"messages": [{"role": "user", "content": "w"}]})
        await client.runs.join(tid, run["run_id"])
        stateless = await client.runs.create(None, "fail", input={"text": "x"}, webhook=url)
        await until(lambda: _count(2), within=10)
        by_id = {r["run_id"]: r for r in _Receiver.received}
        done = by_id[run["run_id"]]
        assert done["status"] == "success" and done["thread_id"] == tid
        assert done["metadata"]["k"] == "v"
        assert done["values"]["messages"][-1]["content"] == "echo: w"
        failed = by_id[stateless["run_id"]]
        assert failed["status"] == "error" and failed["error"]["error"] == "ValueError"

    async def _count(n):
        return len(_Receiver.received) >= n

    try:
        asyncio.run(scenario())
    finally:
        receiver.shutdown()
        receiver.server_close()
