"""``http.mount_prefix``: every route served under a path prefix, as on the platform.

``Prefixed`` wraps the app to serve (ours, or ours beside the user's ``http.app``). A
request under the prefix reaches it with the prefix moved into the ASGI ``root_path``
(Quart and Starlette route on the rest, so ``/my-deployment/api/assistants/search`` is
``/assistants/search``). The health probes also answer at the root, so load balancer
and orchestrator checks need no change: the platform keeps ``/``, ``/ok`` and
``/metrics`` there; we add our own ``/health``, ``/ready`` and ``/live``. Any other path
outside the prefix is 404. Lifespan passes through untouched.
"""

from __future__ import annotations

from typing import cast

import msgspec
from hypercorn.typing import Framework

from aegra.api.errors import error_body
from aegra.api.mount import ASGIApp, Message, Receive, Send

ROOT_PATHS = frozenset({"/", "/ok", "/metrics", "/health", "/ready", "/live"})


class Prefixed:
    def __init__(self, app: Framework, prefix: str) -> None:
        self.app = cast(ASGIApp, app)  # hypercorn's TypedDict scopes are these dicts
        self.prefix = prefix

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        root = scope.get("root_path") or ""
        path: str = scope["path"]
        inner = path[len(root):] if root and path.startswith(root) else path
        if inner == self.prefix or inner.startswith(self.prefix + "/"):
            scope = {**scope, "root_path": root + self.prefix}
            if inner == self.prefix:  # the prefix alone is the mounted app's "/"
                scope["path"] = path + "/"
                scope["raw_path"] = (scope.get("raw_path") or path.encode()) + b"/"
            await self.app(scope, receive, send)
        elif inner in ROOT_PATHS:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1000})
        else:
            await send({"type": "http.response.start", "status": 404,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": msgspec.json.encode(
                error_body(404, f"Not Found: this server's routes are under {self.prefix}"))})


def prefixed(app: Framework, prefix: str | None) -> Framework:
    """``app`` served under ``prefix`` (None: as it is)."""
    if not prefix:
        return app
    return cast(Framework, Prefixed(app, prefix))
