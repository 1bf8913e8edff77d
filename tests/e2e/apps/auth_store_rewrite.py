"""Store scoping by rewriting, the platform docs' pattern: every store action prepends
the caller's identity to the namespace, a put stamps ``owner`` into the value, and a
search also returns ``{"owner": identity}`` (AND-ed with the caller's filter). The
admin is neither rewritten nor filtered. Tokens as in auth_owner.py.
"""

from typing import Any

from langgraph_sdk import Auth

auth = Auth()

USERS: dict[str, dict[str, Any]] = {
    "alice-token": {"identity": "alice"},
    "bob-token": {"identity": "bob"},
    "admin-token": {"identity": "admin", "permissions": ["admin"]},
}


@auth.authenticate
async def authenticate(authorization: str | None) -> dict[str, Any]:
    user = USERS.get((authorization or "").removeprefix("Bearer "))
    if user is None:
        raise Auth.exceptions.HTTPException(status_code=401, detail="invalid token")
    return user


@auth.on.store
async def scope_to_user(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> Any:
    if "admin" in ctx.permissions:
        return None
    if value.get("key") == "forbidden":
        return False
    value["namespace"] = (ctx.user.identity, *(value.get("namespace") or ()))
    if ctx.action == "put":
        value["value"]["owner"] = ctx.user.identity
    if ctx.action == "search":
        return {"owner": ctx.user.identity}
    return None
