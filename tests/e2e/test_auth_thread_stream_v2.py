"""Agent Protocol v2 thread streaming under custom auth (tests/e2e/apps/auth_owner.py):
``run.start`` is ``create_run`` on the thread, the event stream a ``read`` of it; a thread
another user owns is 404 on both transports, one that does not exist yet is accepted."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.auth_support import TOKENS, as_user, auth_server  # noqa: F401 (fixtures)


def _bearer(who):
    return {"Authorization": f"Bearer {TOKENS[who]}"}


async def _ws_refusal(url, headers):
    async with ws_connect(url, additional_headers=headers) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            # The refusal may already be there when the subscription goes out.
            await ws.send(json.dumps({"id": 1, "method": "subscription.subscribe",
                                      "params": {"channels": ["lifecycle"]}}))
            while True:
                await ws.recv()
        return closed.value.rcvd.code


def test_owner_streams_and_resumes_others_get_404(auth_server, as_user):  # noqa: F811
    async def scenario():
        alice = as_user("alice")
        async with alice.threads.stream(assistant_id="hitl", transport="websocket",
                                        headers=_bearer("alice")) as thread:
            await thread.run.start(input={"topic": "x"})
            for _ in range(400):
                if thread.interrupted:
                    break
                await asyncio.sleep(0.05)
            await thread.run.respond("ok")
            output = await asyncio.wait_for(thread.output, 20)
        assert output["trail"] == ["draft", "ask", "finish:ok"]
        tid = thread.thread_id
        assert (await alice.threads.get(tid))["metadata"]["owner"] == "alice"

        async with httpx.AsyncClient(base_url=auth_server.url, timeout=30) as http:
            body = {"channels": ["lifecycle"]}
            resp = await http.post(f"/threads/{tid}/stream/events", json=body,
                                   headers=_bearer("bob"))
            assert resp.status_code == 404
            resp = await http.post(f"/threads/{tid}/commands", headers=_bearer("bob"), json={
                "id": 1, "method": "run.start", "params": {"assistant_id": "hitl",
                                                          "input": {"topic": "y"}}})
            assert resp.status_code == 404
            resp = await http.post(f"/threads/{tid}/stream/events", json=body)
            assert resp.status_code == 401
            # A thread nobody created yet: the SDK subscribes before run.start creates it.
            async with http.stream("POST", f"/threads/{uuid.uuid4()}/stream/events",
                                   json=body, headers=_bearer("bob")) as fresh:
                assert fresh.status_code == 200
        ws = auth_server.url.replace("http", "ws", 1) + f"/threads/{tid}/stream/events"
        assert await _ws_refusal(ws, _bearer("bob")) == 4404
        assert await _ws_refusal(ws, {}) == 4401
    asyncio.run(scenario())
