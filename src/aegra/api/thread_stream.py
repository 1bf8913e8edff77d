"""Thread-level join stream: GET /threads/{thread_id}/stream (LangGraph Platform).

Follows every run of the thread in order: the in-flight ones, then runs created while the
client listens. Event ids are the runs' own (``<run_id>_event_<n>``), so ``Last-Event-ID``
resumes inside the run it names and continues with the runs after it. ``stream_mode``:
``run_modes`` (default: every event), ``lifecycle`` (metadata/end/error only) or
``state_update`` (values). The stream ends once the thread has nothing in flight after a
run it followed, or after ``idle_s`` with nothing to follow. Opening it is a ``read`` of
the thread: a thread the caller may not see is NotFound.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from functools import partial
from typing import cast

import trio
from quart import Blueprint, Response, request

from aegra.api.auth import caller
from aegra.api.deps import Deps, deps, services
from aegra.api.sse import KEEPALIVE, run_events, sse_response
from aegra.api.wire import query_list
from aegra.domain.errors import Invalid
from aegra.domain.runs import parse_event_id
from aegra.services.container import Services

bp = Blueprint("thread_stream", __name__)
POLL_S = 0.25
MODES = {"run_modes": None, "lifecycle": {"metadata", "end", "error"},
         "state_update": {"values"}}


@bp.get("/threads/<thread_id>/stream")
async def join_thread_stream(thread_id: str) -> Response:
    """Stream the events of every run of a thread, current and upcoming."""
    d = deps()
    since = await services().runs.thread_stream_start(caller(), thread_id)
    modes: set[str] | None = set()
    for mode in query_list("stream_mode") or ["run_modes"]:
        if mode not in MODES:
            raise Invalid(f"invalid field 'stream_mode': {mode!r}; expected one of "
                          f"{sorted(MODES)}", field="stream_mode")
        extra = MODES[mode]
        modes = None if extra is None or modes is None else modes | extra
    last = request.headers.get("Last-Event-ID")
    resume_run, resume_seq = None, 0
    if last and "_event_" in last:
        resume_run, resume_seq = last.rsplit("_event_", 1)[0], parse_event_id(last)
    body = _follow(d, thread_id, modes, resume_run, resume_seq, since, idle_s=30.0)
    return sse_response(body, {"Location": f"/threads/{thread_id}/stream"})


async def _follow(d: Deps, thread_id: str, modes: set[str] | None, resume_run: str | None,
                  resume_seq: int, since: datetime, *, idle_s: float) -> AsyncIterator[bytes]:
    # ``d`` is passed in: the body runs after the handler returned, outside the app context.
    service = cast(Services, d.services).runs  # wired: the handler got here through it
    keepalive = d.config.http.keepalive_interval_s
    after_created = None
    followed = False
    if resume_run is not None:
        row = await service.find(resume_run)
        if row is not None and row["thread_id"] == thread_id:
            after_created = row["created_at"]
            async for frame in run_events(lambda: service.broker.subscribe(resume_run,
                                                                          resume_seq),
                                          keepalive_s=keepalive, modes=modes):
                yield frame
            followed = True
    waited = 0.0
    since_beat = 0.0
    while True:
        upcoming = await service.next_runs(thread_id, after_created, since)
        if upcoming:
            waited = 0.0
            run = upcoming[0]
            after_created = run["created_at"]
            async for frame in run_events(partial(service.broker.subscribe, run["run_id"], 0),
                                          keepalive_s=keepalive, modes=modes):
                yield frame
            followed = True
            continue
        if followed or waited >= idle_s:
            return
        await trio.sleep(POLL_S)
        waited += POLL_S
        since_beat += POLL_S
        if since_beat >= keepalive:
            since_beat = 0.0
            yield KEEPALIVE
