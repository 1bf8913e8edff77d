"""Server-sent events for runs: replay-then-live, keepalive comments, disconnects.

The body is an async generator that holds no cancel scope across a ``yield`` (Trio forbids
it): each wait for the next event is its own ``move_on_after``, and a keepalive comment
goes out when it expires. A client that goes away ends the generator (the response task
is cancelled, or the next write fails); ``finally`` then cancels the run when the request
asked for it, under a bounded shield. A join never cancels unless asked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import trio
from quart import Response

from aegra import logs
from aegra.domain.ports import StreamEvent, Subscription
from aegra.domain.replay import DROPPED

log = logs.get_logger("aegra.sse")
KEEPALIVE = b": heartbeat\n\n"
MAX_BATCH = 256  # events per write when a reader is behind (bounds one chunk's size)

SSE_HEADERS = {
    "Cache-Control": "no-cache",
    "Connection": "keep-alive",
    "X-Accel-Buffering": "no",
}


def _wanted(name: str, modes: set[str] | None) -> bool:
    # A join with a mode subset gets only those modes, as on the platform (which drops
    # `metadata` too), plus the run's own `error`, our closing `end` and the replay
    # buffer's `events_dropped` notice.
    if modes is None or name in ("error", "end", DROPPED):
        return True
    base = name.split("|", 1)[0]
    if base in modes:
        return True
    if base == "messages" and "messages-tuple" in modes:
        return True
    return base.startswith("messages/") and "messages" in modes


async def run_events(
    subscribe: Callable[[], Awaitable[Subscription]],
    *,
    keepalive_s: float,
    modes: set[str] | None = None,
    on_disconnect: Callable[[], Awaitable[None]] | None = None,
    run_id: str = "",
    end_if_empty: bytes | None = None,
    first: bytes | None = None,
) -> AsyncIterator[bytes]:
    """``first``: the run's opening ``metadata`` event, sent before the subscription is
    even open (the stream of a run just created need not wait for a worker to start it);
    the worker's own copy (event 1) is then not sent again."""
    def keep(event: StreamEvent) -> bool:
        if first is not None and event.seq == 1 and event.name == "metadata":
            return False  # the worker's copy of ``first``
        return _wanted(event.name, modes)

    sub: Subscription | None = None
    finished = False
    sent = False
    closed = False  # the subscription ended while a batch was being drained
    try:
        if first is not None:
            yield first
        sub = await subscribe()
        # Events already queued behind the one awaited go out in the same write (one
        # trip through quart, hypercorn and the socket instead of one each); order and
        # the mode filter are kept.
        while True:
            event: StreamEvent | None = None
            ended = closed
            if not closed:
                with trio.move_on_after(keepalive_s):
                    try:
                        event = await sub.__anext__()
                    except StopAsyncIteration:
                        ended = True
            if ended:
                # A reader cut off for lagging gets a clean close without `end`: the SDK
                # then reconnects with Last-Event-ID and resumes where it was.
                finished = not sub.lagged
                if finished and not sent and end_if_empty is not None:
                    # A finished run with nothing after Last-Event-ID: say so again rather
                    # than close silently (the client may not have seen the end).
                    yield end_if_empty
                return
            if event is None:
                yield KEEPALIVE
                continue
            frames = [event.frame] if keep(event) else []
            while len(frames) < MAX_BATCH:
                try:
                    queued = sub.receive_nowait()
                except trio.WouldBlock:
                    break
                except (trio.EndOfChannel, trio.ClosedResourceError):
                    closed = True
                    break
                if keep(queued):
                    frames.append(queued.frame)
            if frames:
                sent = True
                yield frames[0] if len(frames) == 1 else b"".join(frames)
    finally:
        with trio.move_on_after(5, shield=True):
            if sub is not None:
                await sub.aclose()
            if not finished and on_disconnect is not None:
                log.info("sse.client_gone", run_id=run_id, action="cancel")
                await on_disconnect()


async def _logged(body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Once headers are out an error can only end the stream; say why in the log."""
    try:
        async for chunk in body:
            yield chunk
    except Exception as exc:
        log.error("sse.stream_failed", error=repr(exc), exc_info=exc)
        raise


def sse_response(body: AsyncIterator[bytes], headers: dict[str, str]) -> Response:
    response = Response(_logged(body), status=200, content_type="text/event-stream; charset=utf-8",
                        headers={**SSE_HEADERS, **headers})
    response.timeout = None
    return response


async def long_poll(result: Callable[[], Awaitable[bytes]], *, keepalive_s: float
                    ) -> AsyncIterator[bytes]:
    """/wait and /join: newline heartbeats until the JSON result is ready (legal JSON).

    ``result`` must be safe to call again after being cancelled (it waits on the broker's
    completion event), so no task has to outlive a ``yield``.
    """
    while True:
        payload: bytes | None = None
        with trio.move_on_after(keepalive_s):
            payload = await result()
        if payload is not None:
            yield payload
            return
        yield b"\n"
