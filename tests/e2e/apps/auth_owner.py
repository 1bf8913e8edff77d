"""A bearer-token ``Auth`` for the two-user tests: alice, bob, and an admin.

Authorization is the platform docs' owner pattern: every action stamps
``metadata.owner`` with the caller and returns the same filter; the admin (permission
``admin``) is unfiltered. Store namespaces must start with the caller's identity.
"""

from typing import Any

from langgraph_sdk import Auth

auth = Auth()

USERS: dict[str, dict[str, Any]] = {
    "alice-token": {"identity": "alice", "permissions": ["read", "write"],
                    "display_name": "Alice", "team": "red"},
    "bob-token": {"identity": "bob", "permissions": ["read", "write"], "team": "blue"},
    "carol-forbidden-token": {"identity": "carol", "permissions": []},
    "admin-token": {"identity": "admin", "permissions": ["admin"]},
}


@auth.authenticate
async def authenticate(authorization: str | None) -> dict[str, Any]:
    if not authorization or not authorization.startswith("Bearer "):
        raise Auth.exceptions.HTTPException(status_code=401, detail="missing bearer token",
                                            headers={"WWW-Authenticate": "Bearer"})
    user = USERS.get(authorization.removeprefix("Bearer "))
    if user is None:
        raise Auth.exceptions.HTTPException(status_code=401, detail="invalid token")
    if authorization.endswith("forbidden-token"):
        raise Auth.exceptions.HTTPException(status_code=403, detail="suspended")
    return user


@auth.on
async def owner_only(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> Any:
    if "admin" in ctx.permissions:
        return None
    filters = {"owner": ctx.user.identity}
    metadata = value.setdefault("metadata", {})
    if metadata is None:
        metadata = value["metadata"] = {}
    metadata.update(filters)
    return filters


@auth.on.store
async def own_namespace(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> Any:
    if "admin" in ctx.permissions:
        return None
    namespace = tuple(value.get("namespace") or ())
    assert namespace[:1] == (ctx.user.identity,), "namespace must start with your identity"
    return None
