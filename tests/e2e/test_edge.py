"""The HTTP edge of a real ``aegra serve``: CORS from aegra.json ``http.cors``, webhook
URLs refused through the SDK, and the startup warning of a no-auth server on 0.0.0.0.

One server for the module, bound to 0.0.0.0 (the default) with AUTH_TYPE=noop, reached
over 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import UnprocessableEntityError

from tests.e2e.runs_support import module_server, show_logs_on_failure

APP = "https://studio.example.com"
EVIL = "https://evil.example"


@pytest.fixture(scope="module")
def server(pg_admin_dsn, tmp_path_factory):
    yield from module_server(
        pg_admin_dsn, tmp_path_factory, args=["--host", "0.0.0.0"],
        project={"http": {"cors": {"allow_origins": [APP], "allow_credentials": True,
                                   "allow_methods": ["GET", "POST"]}}})


@pytest.fixture(autouse=True)
def _logs(request, server):
    yield from show_logs_on_failure(request, server)


def test_webhook_to_loopback_is_refused_through_the_sdk(server):
    async def scenario():
        client = get_client(url=server.url)
        tid = (await client.threads.create())["thread_id"]
        refused = ["http://127.0.0.1:9/hook", "http://[::1]/hook", "http://localhost/hook",
                   "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/hook"]
        for url in refused:
            with pytest.raises(UnprocessableEntityError) as info:
                await client.runs.create(tid, "agent", input={"messages": []}, webhook=url)
            assert "webhook" in str(info.value.body), info.value.body
        # /runs/wait answers through the SDK's long-poll path: a plain HTTPStatusError.
        with pytest.raises(httpx.HTTPStatusError) as wait:
            await client.runs.wait(None, "agent", input={"messages": []},
                                   webhook="http://127.0.0.1:9/hook")
        assert wait.value.response.status_code == 422
        with pytest.raises(UnprocessableEntityError):
            await client.crons.create("agent", schedule="0 0 * * *", input={},
                                      webhook="http://127.0.0.1:9/hook")
        assert await client.runs.list(tid) == []  # nothing was written
        assert await client.crons.search() == []

    asyncio.run(scenario())


def test_cors_from_the_project_file(server):
    ok = httpx.get(server.url + "/info", headers={"Origin": APP})
    assert ok.headers["access-control-allow-origin"] == APP
    assert ok.headers["access-control-allow-credentials"] == "true"
    evil = httpx.get(server.url + "/info", headers={"Origin": EVIL})
    assert "access-control-allow-origin" not in evil.headers
    assert "access-control-allow-credentials" not in evil.headers

    pre = httpx.options(server.url + "/threads/search", headers={
        "Origin": APP, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, x-api-key"})
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-origin"] == APP
    assert pre.headers["access-control-allow-methods"] == "GET, POST"
    assert pre.headers["access-control-allow-headers"] == "content-type, x-api-key"
    refused = httpx.options(server.url + "/threads/search", headers={
        "Origin": EVIL, "Access-Control-Request-Method": "POST"})
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    wrong_method = httpx.options(server.url + "/threads/t", headers={
        "Origin": APP, "Access-Control-Request-Method": "DELETE"})
    assert wrong_method.status_code == 400


def test_no_auth_on_every_interface_warns_once_at_startup(server):
    lines = [json.loads(line) for line in server.logs().splitlines()
             if line.startswith("{")]
    warnings = [line for line in lines if line["event"] == "server.unauthenticated"]
    assert len(warnings) == 1, warnings
    assert warnings[0]["level"] == "warning"
    detail = warnings[0]["detail"]
    assert "0.0.0.0" in detail and "AUTH_TYPE=custom" in detail
    assert "--host 127.0.0.1" in detail
