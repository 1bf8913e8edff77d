"""Thread-level join stream: GET /threads/{thread_id}/stream (LangGraph Platform).

Follows every run of the thread in order: the in-flight ones, then runs created while the
client listens, each read from the broker from its first event (so a run that started and
ended between two looks is not lost). After each run comes the platform's marker,
``metadata {"status": "run_done", "run_id": ...}``. Event ids are the runs' own
(``<run_id>_event_<n>``), so ``Last-Event-ID`` resumes inside the run it names and
continues with every run after it (finished meanwhile or not); ``Location`` keeps the
query, so a reconnect keeps the modes.

Modes (``domain/thread_stream.py``): ``stream_mode``, as both SDKs send it (repeated,
comma-separated or a JSON array), or ``stream_modes``, the platform server's spelling
(comma-separated). ``run_modes`` (the default) sends every run event; ``lifecycle`` each
run's opening ``metadata``, ``end``/``error`` and the marker; a run stream mode
(``values``, ``updates``, ``messages-tuple``, ``custom``, ...) that mode's events plus the
lifecycle ones; ``state_update`` sends ``{"state": ThreadState, "thread_id": ...}`` each
time the thread's state is written through POST /threads/{id}/state, on any instance
(``EventBroker.listen_thread``; live only, never replayed). An unknown mode is a 422
naming the parameter. The platform server reads only ``stream_modes``, so there the SDKs'
``stream_mode`` is ignored and every run event comes; here it is honoured.

The stream ends once the thread has nothing in flight after a run it followed, or after
``stream.thread_idle_s`` with nothing to follow. With ``state_update`` it outlives the
runs (a state watcher waits between them) and ends after ``thread_idle_s`` without any
event; the platform's never ends on its own. Opening it is a ``read`` of the thread: a
thread the caller may not see is NotFound.
"""

from __future__ import annotations

from collections import deque
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
from aegra.domain.ports import ThreadHandle
from aegra.domain.runs import parse_event_id
from aegra.domain.thread_stream import Plan, plan, run_done, thread_event
from aegra.services.container import Services
from aegra.services.runs import RunService

bp = Blueprint("thread_stream", __name__)
POLL_S = 0.25
MAX_UPDATES = 64  # state updates held for a reader; each is a whole state: keep the newest


@bp.get("/threads/<thread_id>/stream")
async def join_thread_stream(thread_id: str) -> Response:
    """Stream the events of every run of a thread, current and upcoming."""
    d = deps()
    asked = {field: query_list(field) for field in ("stream_mode", "stream_modes")}
    for field, modes in asked.items():
        plan(modes, field=field)  # 422 naming the parameter the bad mode came in
    wanted = plan(asked["stream_mode"] + asked["stream_modes"], field="stream_mode")
    since = await services().runs.thread_stream_start(caller(), thread_id)
    last = request.headers.get("Last-Event-ID")
    resume_run, resume_seq = None, 0
    if last and "_event_" in last:
        resume_run, resume_seq = last.rsplit("_event_", 1)[0], parse_event_id(last)
    query = request.query_string.decode()
    body = _follow(d, thread_id, wanted, resume_run, resume_seq, since,
                   idle_s=d.config.stream.thread_idle_s)
    location = f"/threads/{thread_id}/stream" + (f"?{query}" if query else "")
    return sse_response(body, {"Location": location})


class _Updates:
    """Thread-level frames waiting for the stream; filled by the broker's sink (sync, in
    Trio's thread). Over ``MAX_UPDATES`` the oldest go: each carries the whole state."""

    def __init__(self) -> None:
        self.frames: deque[bytes] = deque(maxlen=MAX_UPDATES)
        self.arrived = trio.Event()

    def put(self, name: str, data: bytes) -> None:
        self.frames.append(thread_event(name, data))
        self.arrived.set()

    def take(self) -> list[bytes]:
        out = list(self.frames)
        self.frames.clear()
        self.arrived = trio.Event()
        return out

    async def wait(self, timeout_s: float) -> None:
        with trio.move_on_after(timeout_s):
            await self.arrived.wait()


async def _follow(d: Deps, thread_id: str, wanted: Plan, resume_run: str | None,
                  resume_seq: int, since: datetime, *, idle_s: float) -> AsyncIterator[bytes]:
    # ``d`` is passed in: the body runs after the handler returned, outside the app context.
    service = cast(Services, d.services).runs  # wired: the handler got here through it
    updates = _Updates() if wanted.state_updates else None
    handle: ThreadHandle | None = None
    try:
        if updates is not None:
            # Listening before the first run is read: an update made meanwhile is kept.
            handle = await service.broker.listen_thread(thread_id, updates.put)
        async for frame in _frames(service, thread_id, wanted, updates, resume_run,
                                   resume_seq, since, d.config.http.keepalive_interval_s,
                                   idle_s):
            yield frame
    finally:
        if handle is not None:
            with trio.move_on_after(5, shield=True):
                await service.broker.unlisten_thread(thread_id, handle)


async def _frames(service: RunService, thread_id: str, wanted: Plan, updates: _Updates | None,
                  resume_run: str | None, resume_seq: int, since: datetime, keepalive: float,
                  idle_s: float) -> AsyncIterator[bytes]:
    follow_runs = wanted.runs is None or bool(wanted.runs)
    modes = None if wanted.runs is None else set(wanted.runs)
    marks = modes is None or "metadata" in modes  # the run_done markers are lifecycle

    async def one_run(run_id: str, after_seq: int) -> AsyncIterator[bytes]:
        async for frame in run_events(partial(service.broker.subscribe, run_id, after_seq),
                                      keepalive_s=keepalive, modes=modes):
            yield frame
            if updates is not None:  # rare: a state write is refused while a run is on
                for queued in updates.take():
                    yield queued
        if marks:
            yield run_done(run_id)

    after_created = None
    followed = False
    if resume_run is not None and follow_runs:
        row = await service.find(resume_run)
        if row is not None and row["thread_id"] == thread_id:
            # A reconnecting client missed the runs after this one, finished or not.
            after_created = since = row["created_at"]
            async for frame in one_run(resume_run, resume_seq):
                yield frame
            followed = True
    waited = since_beat = 0.0
    while True:
        upcoming = await service.next_runs(thread_id, after_created, since) if follow_runs \
            else []
        if upcoming:
            waited = 0.0
            run = upcoming[0]
            after_created = run["created_at"]
            async for frame in one_run(run["run_id"], 0):
                yield frame
            followed = True
            continue
        if (followed and updates is None) or waited >= idle_s:
            return
        step = POLL_S if follow_runs else min(keepalive, idle_s - waited)
        started = trio.current_time()
        if updates is None:
            await trio.sleep(step)
        else:
            await updates.wait(step)
            queued = updates.take()
            if queued:
                waited = since_beat = 0.0
                yield b"".join(queued)
                continue
        elapsed = trio.current_time() - started
        waited += elapsed
        since_beat += elapsed
        if since_beat >= keepalive:
            since_beat = 0.0
            yield KEEPALIVE
