"""The user's ``Auth`` as the server calls it (spec/auth.md items 4-8), on the bridge."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph_sdk import Auth

from aegra.adapters import aio
from aegra.adapters.auth import AuthFailed, SdkAuth, caller_from
from aegra.domain.auth import ANONYMOUS, FilterError, with_identity
from aegra.domain.errors import Forbidden

SCOPE = {"type": "http", "method": "POST", "path": "/threads/search",
         "query_string": b"a=1&b=2", "headers": [(b"authorization", b"Bearer t"),
                                                   (b"x-tenant", b"acme")]}


class Person:
    identity = "carol"
    display_name = "Carol"
    permissions = ("p1",)


def test_every_return_shape_is_a_caller() -> None:
    assert caller_from("alice").identity == "alice"
    dict_user = caller_from({"identity": "bob", "permissions": ["w"], "team": "blue"})
    assert (dict_user.identity, dict_user.permissions) == ("bob", ("w",))
    assert dict_user.user["team"] == "blue" and dict_user.handle.identity == "bob"
    assert dict_user.handle["team"] == "blue" and dict_user.handle.team == "blue"
    obj = caller_from(Person())
    assert (obj.identity, obj.permissions, obj.user["display_name"]) == ("carol", ("p1",),
                                                                         "Carol")
    pair = caller_from((["x", "y"], {"identity": "dave"}))
    assert (pair.identity, pair.permissions) == ("dave", ("x", "y"))
    for bad in ({"no": "identity"}, 42, ("one",)):
        with pytest.raises(ValueError):
            caller_from(bad)


def _auth(authenticate: Any) -> SdkAuth:
    auth = Auth()
    auth.authenticate(authenticate)
    return SdkAuth(auth)


async def test_parameters_are_passed_by_name() -> None:
    seen: dict[str, Any] = {}

    async def authenticate(authorization: str | None, method: str, path: str,
                           headers: dict[bytes, bytes], query_params: dict[str, str],
                           path_params: dict[str, str], body: Any) -> str:
        seen.update(authorization=authorization, method=method, path=path,
                    tenant=headers[b"x-tenant"], query=query_params, path_params=path_params,
                    body=body)
        return "alice"

    auth = _auth(authenticate)
    assert auth.wants_body
    async with aio.open_loop():
        caller = await auth.authenticate(SCOPE, body={"k": 1}, path_params={"id": "x"})
    assert caller.identity == "alice"
    assert seen == {"authorization": "Bearer t", "method": "POST", "path": "/threads/search",
                    "tenant": b"acme", "query": {"a": "1", "b": "2"},
                    "path_params": {"id": "x"}, "body": {"k": 1}}


async def test_statuses_are_kept() -> None:
    def refuse(status: int) -> Any:
        async def authenticate(authorization: str | None) -> str:
            raise Auth.exceptions.HTTPException(status_code=status, detail=f"no {status}",
                                                headers={"WWW-Authenticate": "Bearer"})
        return authenticate

    async with aio.open_loop():
        for status, expected in ((401, 401), (403, 403), (418, 403)):
            with pytest.raises(AuthFailed) as failed:
                await _auth(refuse(status)).authenticate(SCOPE)
            assert failed.value.status == expected
            assert failed.value.headers == {"WWW-Authenticate": "Bearer"}

        def sync_authenticate(authorization: str | None) -> dict[str, Any]:
            return {"identity": "sync-user"}  # a plain function runs in a worker thread

        assert (await _auth(sync_authenticate).authenticate(SCOPE)).identity == "sync-user"


async def test_handler_lookup_order_and_results() -> None:
    auth = Auth()

    @auth.authenticate
    async def authenticate(authorization: str | None) -> str:
        return "alice"

    calls: list[str] = []

    @auth.on
    async def global_(ctx: Any, value: Any) -> Any:
        calls.append("global")
        return {"g": 1}

    @auth.on(actions="delete")
    async def any_delete(ctx: Any, value: Any) -> Any:
        calls.append("*.delete")
        return False

    @auth.on.threads
    async def threads(ctx: Any, value: Any) -> Any:
        calls.append("threads.*")
        value["metadata"]["owner"] = ctx.user.identity
        return True

    @auth.on.threads.read
    async def threads_read(ctx: Any, value: Any) -> Any:
        calls.append("threads.read")
        assert "read" in ctx.permissions, "no read permission"
        return {"owner": ctx.user.identity}

    @auth.on.assistants.search
    async def weird(ctx: Any, value: Any) -> Any:
        return 42

    sdk = SdkAuth(auth)
    async with aio.open_loop():
        alice = await sdk.authenticate(SCOPE)
        reader = caller_from({"identity": "alice", "permissions": ["read"]})
        assert await sdk.authorize(reader, "threads", "read", {}) == {"owner": "alice"}
        with pytest.raises(Forbidden):  # AssertionError -> 403
            await sdk.authorize(alice, "threads", "read", {})
        value: dict[str, Any] = {"metadata": {}}
        assert await sdk.authorize(alice, "threads", "create", value) is None
        assert value["metadata"] == {"owner": "alice"}  # the edit reaches the server
        with pytest.raises(Forbidden):
            await sdk.authorize(alice, "crons", "delete", {})
        assert await sdk.authorize(alice, "store", "put", {}) == {"g": 1}
        with pytest.raises(FilterError):  # neither bool, None nor a filter: 500
            await sdk.authorize(alice, "assistants", "search", {})
    assert calls == ["threads.read", "threads.read", "threads.*", "*.delete", "global"]
    assert sdk.unhandled() == []


def test_identity_keys_are_the_servers() -> None:
    spoofed = {"configurable": {"langgraph_auth_user_id": "admin", "user_id": "x"}}
    assert with_identity(spoofed, None)["configurable"] == {"user_id": "x"}
    mine = with_identity(spoofed, {"identity": "alice", "permissions": ["r"]})["configurable"]
    assert mine["langgraph_auth_user_id"] == "alice"
    assert mine["langgraph_auth_permissions"] == ["r"]
    assert ANONYMOUS.identity is None
