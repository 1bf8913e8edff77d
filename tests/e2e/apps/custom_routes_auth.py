"""A user app that reports who the server says is calling (``scope["user"]``)."""

from fastapi import FastAPI, Request

app = FastAPI()


@app.get("/custom/whoami")
async def whoami(request: Request) -> dict:
    user = request.scope.get("user")
    auth = request.scope.get("auth")
    return {"identity": getattr(user, "identity", None),
            "scopes": list(getattr(auth, "scopes", []) or [])}
