"""Authentication at the HTTP edge, before routing (spec/auth.md items 3-6).

With custom auth every request is authenticated before its handler runs, including
requests for unknown paths and ids (so they answer 401, not 404, without credentials).
Open: the platform's meta routes, our probes, and GETs of UI bundle files under ``/ui/``
(loaded by ``<script src>``, which sends no credentials; ``POST /ui/{name}`` is not
open), and ``/admin/*``, which ``AEGRA_ADMIN_TOKEN`` guards instead. CORS preflights
never get here: the app answers them in an earlier hook (a
browser sends no credentials on them). The
caller is kept on ``g`` and handed explicitly to every service call through
``caller()``. With ``AUTH_TYPE=noop`` nothing runs and the caller is ``ANONYMOUS``.
"""

from __future__ import annotations

from typing import Any

import msgspec
from quart import Quart, g, request

from aegra.domain.auth import ANONYMOUS, Caller
from aegra.domain.errors import Invalid
from aegra.domain.ports import Authenticator

OPEN_PATHS = frozenset({"/", "/ok", "/info", "/docs", "/openapi.json", "/metrics", "/live",
                        "/ready", "/health"})
ADMIN_PREFIX = "/admin/"


def caller() -> Caller:
    """The caller of the current request (``ANONYMOUS`` without custom auth)."""
    found: Caller | None = g.get("caller")
    return found if found is not None else ANONYMOUS


def install(app: Quart, authenticator: Authenticator | None) -> None:
    if authenticator is None:
        return

    @app.before_request
    async def _authenticate() -> None:
        if request.path in OPEN_PATHS or request.path.startswith(ADMIN_PREFIX):
            return  # /admin/* has its own credential, AEGRA_ADMIN_TOKEN (api/admin.py)
        if request.method in ("GET", "HEAD") and request.path.startswith("/ui/"):
            return  # UI bundle files, fetched by <script src>: open, as on the platform
        body = None
        if authenticator.wants_body and request.method in ("POST", "PUT", "PATCH", "DELETE"):
            raw = await request.get_data(cache=True)
            if raw:
                try:
                    body = msgspec.json.decode(raw)
                except msgspec.DecodeError:
                    raise Invalid("invalid request body: not valid JSON",
                                  field="body") from None
        path_params: dict[str, Any] = dict(request.view_args or {})
        g.caller = await authenticator.authenticate(
            request.scope, body=body, request=request, path_params=path_params)
