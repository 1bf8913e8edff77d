"""An ``authenticate`` that reads the request through every by-name parameter."""

from typing import Any

from langgraph_sdk import Auth

auth = Auth()


@auth.authenticate
async def authenticate(method: str, path: str, body: Any, query_params: dict[str, str],
                       headers: dict[bytes, bytes], path_params: dict[str, str]) -> Any:
    user = headers.get(b"x-user")
    if user is None:
        raise Auth.exceptions.HTTPException(status_code=401, detail="who are you?")
    if method == "POST" and path == "/threads" and ((body or {}).get("metadata") or {}).get(
            "forbidden"):
        raise Auth.exceptions.HTTPException(status_code=403, detail="the body says no")
    if query_params.get("deny") == "1":
        raise Auth.exceptions.HTTPException(status_code=403, detail="the query says no")
    if path_params.get("thread_id") == "00000000-0000-0000-0000-000000000001":
        raise Auth.exceptions.HTTPException(status_code=403, detail="the path says no")
    return {"identity": user.decode()}
