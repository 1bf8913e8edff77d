"""The ``http`` settings of aegra.json through the real SDK against one ``aegra serve``:
``mount_prefix`` (every route under it, the probes also at the root),
``configurable_headers`` (request headers in the run's ``config.configurable`` on every
run-creating endpoint), ``logging_headers`` (in the request log lines) and
``disable_webhooks`` (no delivery). Behaviour checked against langgraph-api 0.16.7's
source (utils/headers.py, server.py, webhook.py).
"""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from langgraph_sdk import get_client

from tests.e2e.runs_support import module_server, show_logs_on_failure, until

PREFIX = "/my-deployment/api"
HTTP = {
    "mount_prefix": PREFIX + "/",  # one trailing '/' is dropped, as on the platform
    "configurable_headers": {"includes": ["x-*", "user-agent", "thread_id", "authorization"],
                             "excludes": ["x-secret-*"]},
    "logging_headers": {"include": ["x-log-*", "authorization"]},
    "disable_webhooks": True,
}


@pytest.fixture(scope="module")
def server(pg_admin_dsn, tmp_path_factory):
    yield from module_server(
        pg_admin_dsn, tmp_path_factory,
        project={"http": HTTP, "webhooks": {"url": {"allowed_domains": ["127.0.0.1"]}}},
        AEGRA__HTTP__LOG_REQUESTS="true")


@pytest.fixture(autouse=True)
def _logs(request, server):
    yield from show_logs_on_failure(request, server)


def _client(server, **headers: str):
    return get_client(url=server.url + PREFIX, headers=headers)


def test_routes_are_served_under_the_prefix(server):
    async def scenario():
        client = _client(server)
        found = await client.assistants.search(graph_id="agent")
        assert [a["graph_id"] for a in found] == ["agent"]
        tid = (await client.threads.create())["thread_id"]
        assert (await client.threads.get(tid))["thread_id"] == tid
        parts = [p async for p in client.runs.stream(tid, "agent", input={"messages": []})]
        assert parts[0].event == "metadata"
        async with httpx.AsyncClient(base_url=server.url) as raw:
            # Outside the prefix: 404, except the probes, which answer at the root too.
            assert (await raw.post("/assistants/search", json={})).status_code == 404
            assert (await raw.get(f"/threads/{tid}")).status_code == 404
            for probe in ("/ok", "/ready", "/health", "/live", "/"):
                assert (await raw.get(probe)).status_code == 200, probe
            assert (await raw.get(PREFIX + "/ok")).json() == {"ok": True}
            assert (await raw.get(PREFIX)).status_code == 200  # the prefix alone is "/"
            assert (await raw.get(PREFIX + "x/ok")).status_code == 404  # not a segment
            spec = (await raw.get(PREFIX + "/openapi.json")).json()
            assert spec["servers"] == [{"url": PREFIX}]
            assert "/assistants/search" in spec["paths"]

    asyncio.run(scenario())


def _seen(values: dict) -> dict:
    return values["seen"]


def test_configurable_headers_reach_every_run_creating_endpoint(server):
    headers = {"X-Tenant": "acme", "X-Secret-Token": "hide", "Authorization": "Bearer t",
               "thread_id": "not-this-one", "X-Flag": "from-header",
               "Accept-Language": "fr", "langsmith-trace": "trace-1",
               "baggage": "langsmith-project=proj,langsmith-tags=a%2Cb,other=x"}

    def check(seen: dict, tid: str | None) -> None:
        assert seen["x-tenant"] == "acme" and seen["x-flag"] == "from-header"
        assert seen["user-agent"].startswith("langgraph-sdk-py/")
        assert seen["langsmith-trace"] == "trace-1"  # tracing always goes
        assert seen["langsmith-project"] == "proj" and seen["langsmith-tags"] == ["a", "b"]
        assert seen["keep"] == 1  # the body's own configurable stays
        for absent in ("x-secret-token", "authorization", "accept-language", "baggage"):
            assert absent not in seen, absent
        if tid is not None:
            assert seen["thread_id"] == tid  # a header never picks a server-owned key
        else:
            assert seen["thread_id"] != "not-this-one"

    async def scenario():
        client = _client(server, **headers)
        config = {"configurable": {"x-flag": "from-body", "keep": 1}}
        tid = (await client.threads.create())["thread_id"]
        check(_seen(await client.runs.wait(tid, "config", input={}, config=config)), tid)
        check(_seen(await client.runs.wait(None, "config", input={}, config=config)), None)
        run = await client.runs.create(tid, "config", input={}, config=config)
        check(_seen(await client.runs.join(tid, run["run_id"])), tid)
        stored = (await client.runs.get(tid, run["run_id"]))["kwargs"]["config"]
        assert stored["configurable"]["x-tenant"] == "acme"
        parts = [p async for p in client.runs.stream(tid, "config", input={}, config=config,
                                                     stream_mode="values")]
        check(_seen([p.data for p in parts if p.event == "values"][-1]), tid)
        batch = await client.runs.create_batch([
            {"assistant_id": "config", "input": {}, "config": config,
             "on_completion": "keep"}])
        done = await client.runs.join(batch[0]["thread_id"], batch[0]["run_id"])
        check(_seen(done), batch[0]["thread_id"])
        # v2 thread streaming's run.start (a command, as threads.stream() sends it)
        v2_tid = (await client.threads.create())["thread_id"]
        async with httpx.AsyncClient(base_url=server.url + PREFIX, headers=headers) as raw:
            answer = (await raw.post(f"/threads/{v2_tid}/commands", json={
                "id": 1, "method": "run.start",
                "params": {"assistant_id": "config", "input": {}, "config": config}})).json()
        assert answer["type"] == "success", answer
        await client.runs.join(v2_tid, answer["result"]["run_id"])
        v2_seen = _seen((await client.threads.get_state(v2_tid))["values"])
        assert v2_seen["x-tenant"] == "acme" and "x-secret-token" not in v2_seen
        assert v2_seen["thread_id"] == v2_tid
        # Without the headers: nothing of them (and no user-agent pattern match is
        # needed to leave the rest out).
        bare = get_client(url=server.url + PREFIX, headers={"User-Agent": ""})
        seen = _seen(await bare.runs.wait(None, "config", input={}))
        assert not {k for k in seen if k.startswith(("x-", "langsmith"))}

    asyncio.run(scenario())


def test_logging_headers_appear_in_request_log_lines(server):
    async def scenario():
        client = _client(server, **{"X-Log-Me": "yes", "X-Other": "no",
                                    "Authorization": "Bearer secret"})
        await client.assistants.search(metadata={"marker": "logging-headers"})

    asyncio.run(scenario())
    lines = [json.loads(line) for line in server.logs().splitlines()
             if '"http.request"' in line and "x-log-me" in line]
    assert lines, "no request line with the header"
    line = lines[-1]
    assert line["path"] == PREFIX + "/assistants/search"
    assert line["req_header"] == {"x-log-me": "yes"}  # never authorization
    assert line["res_header"] == {}


class _Receiver(BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self):  # noqa: N802
        self.received.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_disable_webhooks_makes_no_call(server):
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"

    async def scenario():
        client = _client(server)
        tid = (await client.threads.create())["thread_id"]
        run = await client.runs.create(tid, "agent", input={"messages": []}, webhook=url)
        await client.runs.join(tid, run["run_id"])

        async def skipped():
            return [line for line in server.logs().splitlines()
                    if "webhook.skipped" in line and run["run_id"] in line]
        # Logged where the delivery would have started: after it, none can follow.
        await until(skipped)

    try:
        asyncio.run(scenario())
        assert _Receiver.received == []
    finally:
        receiver.shutdown()
        receiver.server_close()
