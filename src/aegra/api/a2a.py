"""A2A endpoints (``http.disable_a2a`` removes them): JSON-RPC at ``/a2a/{assistant_id}``
and each assistant's agent card, at the paths the platform serves it.

Decode the envelope, make one ``A2AService`` call with the request's caller, encode.
JSON-RPC errors are HTTP 200 with an error object; a card for an unknown assistant is
400 with the same error object, as on the platform.
"""

from __future__ import annotations

from quart import Blueprint, Response, request

from aegra.api.auth import caller
from aegra.api.deps import deps, services
from aegra.api.sse import sse_response
from aegra.api.wire import json
from aegra.domain.a2a import INVALID_PARAMS, RpcError, parse_call
from aegra.services.a2a import A2AService

bp = Blueprint("a2a", __name__)


def _service() -> A2AService:
    return A2AService(services(), keepalive_s=deps().config.http.keepalive_interval_s,
                      headers=list(request.headers.items()))


def _accepts(media_type: str) -> bool:
    """Does the Accept header allow ``media_type`` (exactly, ``type/*`` or ``*/*``)?"""
    for item in (request.headers.get("Accept") or "").split(","):
        candidate = item.split(";", 1)[0].strip().lower()
        if candidate in ("*/*", media_type) or (
                candidate.endswith("/*") and media_type.startswith(candidate[:-1])):
            return True
    return False


@bp.post("/a2a/<assistant_id>")
@bp.post("/a2a/<assistant_id>/")
async def rpc(assistant_id: str) -> Response:
    """A2A JSON-RPC 2.0 (A2A 1.0 and 0.3 method names); streaming answers with SSE."""
    data = await request.get_data(cache=False, as_text=False, parse_form_data=False)
    try:
        call = parse_call(data)
    except RpcError as exc:
        return json(exc.body())
    wanted = "text/event-stream" if call.streaming else "application/json"
    if not _accepts(wanted):
        return json({"error": f"Accept header must include {wanted}"}, status=400)
    if call.streaming:
        return sse_response(_service().stream(caller(), assistant_id, call), {})
    return json(await _service().call(caller(), assistant_id, call))


async def _card(assistant_id: str) -> Response:
    url = request.root_url  # scheme, host and any mount prefix
    # As on the platform: behind a TLS-terminating proxy the card names https.
    forwarded = (request.headers.get("X-Forwarded-Proto") or "").split(",")[0].strip().lower()
    if forwarded in ("http", "https"):
        url = forwarded + url[url.index(":"):]
    try:
        return json(await _service().card(caller(), assistant_id, url, deps().version))
    except RpcError as exc:
        return json({"error": {"code": exc.code, "message": exc.message}}, status=400)


@bp.get("/a2a/<assistant_id>")
@bp.get("/a2a/<assistant_id>/")
@bp.get("/a2a/<assistant_id>/.well-known/agent-card.json")
@bp.get("/a2a/<assistant_id>/.well-known/agent.json")
async def assistant_card(assistant_id: str) -> Response:
    """The agent card of one assistant (the per-agent well-known path)."""
    return await _card(assistant_id)


@bp.get("/.well-known/agent-card.json")
async def root_card() -> Response:
    """The agent card of the assistant named by the ``assistant_id`` query parameter."""
    assistant_id = request.args.get("assistant_id")
    if not assistant_id:
        return json({"error": {"code": INVALID_PARAMS,
                               "message": "Missing required query parameter: assistant_id"}},
                    status=400)
    return await _card(assistant_id)
