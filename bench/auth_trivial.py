"""A trivial custom auth for ``bench/ab.py --b-auth``: what the per-request cost of the
auth path is, with the docs' owner pattern (stamp metadata, filter on it)."""

from typing import Any

from langgraph_sdk import Auth

auth = Auth()


@auth.authenticate
async def authenticate(authorization: str | None) -> str:
    if authorization != "Bearer bench":
        raise Auth.exceptions.HTTPException(status_code=401, detail="bad token")
    return "bench-user"


@auth.on
async def owner(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> dict[str, str]:
    filters = {"owner": ctx.user.identity}
    value.setdefault("metadata", {}).update(filters)
    return filters
