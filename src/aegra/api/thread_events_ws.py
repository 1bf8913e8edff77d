"""Agent Protocol v2 thread events over WebSocket: ``/threads/{thread_id}/stream/events``.

As the SDK's WebSocket transport expects: the first client frame is a
``subscription.subscribe`` command carrying the filter (``channels``, ``namespaces``,
``depth``, ``since``); the server answers it with a ``success`` envelope and then sends
one JSON message per frame, each an event envelope. Later client frames are commands
(``run.start``, ``input.respond``, ...) answered in-band. The server closes with 1000
when the thread has nothing left to follow (the SDK's clean end), and refuses with
``4000 + HTTP status`` after accepting (a browser cannot read a refused upgrade's
status): 4401/4403 failed authentication, 4404 a thread the caller may not see, 4422 a
bad first frame (its error envelope goes out first).

Authentication runs here: the ``before_request`` hook does not see WebSockets.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import Any

import trio
from quart import Blueprint, g, websocket

from aegra.api.deps import Deps, deps, services
from aegra.api.thread_events import as_bytes, dispatch, parse_command
from aegra.api.wire import encode
from aegra.domain.auth import ANONYMOUS, Caller
from aegra.domain.errors import DomainError, Invalid
from aegra.domain.protocol_filter import Filter, error, parse_filter, success
from aegra.services.thread_events import ThreadEvents

bp = Blueprint("thread_events_ws", __name__)
FIRST_FRAME_S = 30.0


def _reason(message: str) -> str:
    """A close reason within the protocol's 123 bytes of UTF-8."""
    return message.encode()[:120].decode(errors="ignore")


async def _send(message: dict[str, Any]) -> None:
    await websocket.send(encode(message).decode())


async def _caller(d: Deps, thread_id: str) -> Caller:
    if d.authenticator is None:
        return ANONYMOUS
    who = await d.authenticator.authenticate(websocket.scope, body=None, request=websocket,
                                             path_params={"thread_id": thread_id})
    g.caller = who
    return who


async def _subscribe() -> tuple[int, Filter]:
    raw: str | bytes | None = None
    with trio.move_on_after(FIRST_FRAME_S):  # a socket that never subscribes is let go
        raw = await websocket.receive()
    if raw is None:
        raise Invalid(f"invalid field 'method': no subscription.subscribe within "
                      f"{FIRST_FRAME_S:g}s", field="method")
    cmd_id, method, params = parse_command(as_bytes(raw))
    if method != "subscription.subscribe":
        raise Invalid("invalid field 'method': the first frame must be "
                      "subscription.subscribe", field="method")
    return cmd_id, parse_filter(params, prefix="params.")


@bp.websocket("/threads/<thread_id>/stream/events")
async def stream_events_ws(thread_id: str) -> None:
    """Subscribe with the first frame, then events out and commands in."""
    d = deps()
    await websocket.accept()
    try:
        who = await _caller(d, thread_id)
        cmd_id, flt = await _subscribe()
        events = ThreadEvents(services().runs, idle_s=d.config.stream.thread_idle_s)
        start = await events.open(who, thread_id)
    except Invalid as exc:
        await _send(error(None, "invalid_argument", exc.message) | {"field": exc.field})
        await websocket.close(4000 + exc.status, _reason(exc.message))
        return
    except DomainError as exc:
        await websocket.close(4000 + exc.status, _reason(exc.message))
        return
    await _send(success(cmd_id, {"subscription_id": str(cmd_id), "replayed_events": 0}))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_commands, who, thread_id)
        body = events.events(thread_id, flt, start,
                             keepalive_s=d.config.http.keepalive_interval_s)
        async with aclosing(body):
            async for batch in body:
                for event in batch or ():
                    await _send(event)
        nursery.cancel_scope.cancel()
    await websocket.close(1000, "thread stream ended")


async def _commands(who: Caller, thread_id: str) -> None:
    """Commands sent on the socket after the subscription, answered in-band."""
    while True:
        raw = as_bytes(await websocket.receive())
        try:
            cmd_id, method, params = parse_command(raw)
        except Invalid as exc:
            await _send(error(None, "invalid_argument", exc.message))
            continue
        try:
            await _send(await dispatch(who, thread_id, cmd_id, method, params,
                                       websocket.headers))
        except DomainError as exc:
            await _send(error(cmd_id, "unknown_error", exc.message))
