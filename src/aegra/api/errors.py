"""The one table from errors to HTTP responses (STYLE §5).

Body: ``{"detail": msg, "message": msg, "error": kind}`` (+ ``field`` when known): the
Python SDK reads ``message``/``detail``, the JS client and Starlette-style tools read
``detail``, Aegra clients read ``error``. Unknown errors: 500 with a generic message; the
traceback goes to the log only. Exception groups from handlers that opened nurseries are
unwrapped to their single leaf; ``trio.Cancelled`` is never swallowed here.
"""

from __future__ import annotations

from typing import Any

import trio
from quart import Quart, Response, current_app, request
from werkzeug.exceptions import HTTPException

from aegra.api.wire import json
from aegra.domain.errors import DomainError
from aegra.logs import get_logger

log = get_logger("aegra.api")
DRAIN_S = 2.0  # how long an error response waits for the rest of an unread request body

_KIND_BY_STATUS = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
    422: "validation_error", 429: "too_many_requests", 503: "service_unavailable",
}


def error_body(status: int, message: str, kind: str | None = None,
               field: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "detail": message,
        "message": message,
        "error": kind or _KIND_BY_STATUS.get(status, "error"),
    }
    if field:
        body["field"] = field
    return body


def error_response(status: int, message: str, kind: str | None = None,
                   field: str | None = None) -> Response:
    return json(error_body(status, message, kind, field), status=status)


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup):
        leaves = [e for e in exc.exceptions if type(e).__name__ != "Cancelled"]
        if len(leaves) != 1:
            break
        exc = leaves[0]
    return exc


def to_response(exc: BaseException) -> Response:
    exc = _leaf(exc)
    if isinstance(exc, DomainError):
        body = error_body(exc.status, exc.message, exc.kind, exc.field)
        # Extra keys an error carries for the client (e.g. the pending interrupts of a
        # 409 InterruptPending); the standard keys above always win.
        body = {**(getattr(exc, "body", None) or {}), **body}
        response = json(body, status=exc.status)
        for name, value in (getattr(exc, "headers", None) or {}).items():
            response.headers[name] = value  # e.g. WWW-Authenticate from an auth handler
        return response
    if isinstance(exc, HTTPException):
        status = exc.code or 500
        if status == 404:
            # Werkzeug's text names nothing; the path carries the id the client asked for.
            return error_response(404, f"not found: {request.method} {request.path}")
        message = exc.description or exc.name
        if status == 413:
            message = (f"request body is larger than the limit of "
                       f"{current_app.config['MAX_CONTENT_LENGTH']} bytes (http.max_body_bytes)")
        return error_response(status, message)
    log.error("http.unhandled", error=repr(exc), exc_info=exc)
    return error_response(500, "internal server error", "internal_error")


async def _drained(response: Response) -> Response:
    """Receive the rest of an unread request body before answering, or close.

    Errors often come before a handler reads the body (404 on an id, 405, 413), and some
    handlers ignore a body (GET with one). If the response goes out while hypercorn has
    not yet seen the body's end, the keep-alive connection is left half-way through a
    request and the client's next request on it hangs (reproduced: ~30% of
    PATCH-405-then-GET pairs). So wait, briefly, for the body; when it is too large or
    too slow, tell the client not to reuse the connection. Bodies already read return at
    once. Runs as an after-request hook, so error and success responses both pass.
    """
    try:
        with trio.move_on_after(DRAIN_S):
            await request.get_data(cache=False)
            return response
    except HTTPException:
        pass  # 413: the body is being discarded, it will never be complete
    response.headers["Connection"] = "close"
    return response


def install(app: Quart) -> None:
    @app.errorhandler(DomainError)
    async def _domain(exc: DomainError) -> Response:
        return to_response(exc)

    @app.errorhandler(HTTPException)
    async def _http(exc: HTTPException) -> Response:
        return to_response(exc)

    @app.errorhandler(Exception)
    async def _other(exc: Exception) -> Response:
        return to_response(exc)

    app.after_request(_drained)
