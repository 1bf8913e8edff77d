"""Authentication at the edge, through the real SDK: 401 before routing, open routes,
statuses kept, a broken auth module stops startup."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from langgraph_sdk import get_client

from tests.e2e.auth_support import as_user, auth_server  # noqa: F401  fixtures

pytestmark = pytest.mark.e2e


def test_every_resource_route_needs_credentials(auth_server) -> None:  # noqa: F811
    url = auth_server.url
    with httpx.Client(base_url=url) as http:
        for method, path in [("POST", "/threads"),
                             ("GET", "/threads/00000000-0000-0000-0000-000000000000"),
                             ("POST", "/assistants/search"), ("POST", "/runs/crons/search"),
                             ("PUT", "/store/items"), ("GET", "/no/such/path"),
                             ("POST", "/threads/search"), ("POST", "/runs/wait")]:
            response = http.request(method, path, json={})
            assert response.status_code == 401, (method, path, response.text)
            assert response.json()["detail"] == "missing bearer token"
        assert http.get("/threads/x", headers={"Authorization": "Bearer nope"}).status_code == 401
        # Studio's header is no credential outside ``aegra dev``.
        assert http.post("/threads", json={},
                         headers={"x-auth-scheme": "langsmith"}).status_code == 401
        bad = http.get("/threads/x", headers={"Authorization": "Bearer carol-forbidden-token"})
        assert bad.status_code == 403
        assert http.post("/threads", json={}).headers.get("WWW-Authenticate") == "Bearer"
        for path in ("/ok", "/info", "/", "/openapi.json", "/metrics", "/live", "/ready",
                     "/health", "/docs"):
            assert http.get(path).status_code == 200, path


def test_authenticated_caller_is_served(as_user) -> None:  # noqa: F811
    async def scenario() -> None:
        alice = as_user("alice")
        thread = await alice.threads.create()
        assert thread["metadata"]["owner"] == "alice"
        anonymous = get_client(url=str(alice.http.client.base_url))
        with pytest.raises(httpx.HTTPStatusError) as failed:
            await anonymous.threads.get(thread["thread_id"])
        assert failed.value.response.status_code == 401

    asyncio.run(scenario())
