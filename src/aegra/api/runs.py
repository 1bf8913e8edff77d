"""Run endpoints (thread-scoped and stateless): create, stream, wait, batch, get, list,
delete, join, join stream, cancel, bulk cancel. Every run goes through RunService, with
the request's caller (authorization happens there)."""

from __future__ import annotations

from typing import Any

import msgspec
import trio
from quart import Blueprint, Response, request

from aegra.api.auth import caller
from aegra.api.deps import deps, services
from aegra.api.run_models import (
    CancelMany,
    RunCreate,
    cancel_action,
    query_int,
    run_json,
    validate,
)
from aegra.api.sse import long_poll, run_events, sse_response
from aegra.api.wire import body, decode, encode, json, query_list
from aegra.domain.errors import Invalid
from aegra.domain.runs import TERMINAL, parse_event_id, sse_frame
from aegra.services.runs import RunService, stream_modes, wait_payload

bp = Blueprint("runs", __name__)


def _no_content() -> Response:
    # An explicit empty body: quart turns None into a sync iterable that it drains on an
    # asyncio executor thread, and under trio-asyncio its StopAsyncIteration crashes the
    # whole server.
    return Response(b"", status=204)


def _service() -> RunService:
    return services().runs


def _locations(run: dict[str, Any], suffix: str) -> dict[str, str]:
    base = f"/threads/{run['thread_id']}/runs/{run['run_id']}"
    return {"Content-Location": base, "Location": base + suffix}


async def _create(thread_id: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    params = validate(await body(RunCreate), stateless=thread_id is None)
    run = await _service().create(caller(), params, thread_id=thread_id,
                                  headers=request.headers)
    return run, params


@bp.post("/threads/<thread_id>/runs")
async def create_run(thread_id: str) -> Response:
    """Create a background run on a thread."""
    run, _ = await _create(thread_id)
    return json(run_json(run), headers=_locations(run, ""))


@bp.post("/runs")
async def create_stateless_run() -> Response:
    """Create a background run on a new, ephemeral thread."""
    run, _ = await _create(None)
    return json(run_json(run), headers=_locations(run, ""))


@bp.post("/runs/batch")
async def create_batch() -> Response:
    """Create several background runs; every item is validated before any is created."""
    data = await request.get_data(cache=False, as_text=False, parse_form_data=False)
    # Malformed JSON, a non-array or an item that is not a run: 422 naming the place.
    items = decode(data, list[RunCreate]) if data.strip() else []
    creates = [(validate(create, stateless=create.thread_id is None), create.thread_id)
               for create in items]
    who = caller()
    out = [run_json(await _service().create(who, params, thread_id=tid,
                                            headers=request.headers))
           for params, tid in creates]
    return json(out)


async def _stream(thread_id: str | None) -> Response:
    run, params = await _create(thread_id)
    service = _service()
    run_id = run["run_id"]
    cancel = (params.get("on_disconnect") == "cancel")

    async def on_disconnect() -> None:
        await service.cancel([run_id], "interrupt")

    # The metadata event the worker sends first (attempt 1), sent now: the client sees
    # the run id before a worker has claimed and started the run.
    first = sse_frame(run_id, 1, "metadata",
                      msgspec.json.encode({"run_id": run_id, "attempt": 1}))
    events = run_events(lambda: service.broker.subscribe(run_id, 0),
                        keepalive_s=deps().config.http.keepalive_interval_s,
                        on_disconnect=on_disconnect if cancel else None, run_id=run_id,
                        first=first)
    return sse_response(events, _locations(run, "/stream"))


@bp.post("/threads/<thread_id>/runs/stream")
async def stream_run(thread_id: str) -> Response:
    """Create a run and stream its events (SSE)."""
    return await _stream(thread_id)


@bp.post("/runs/stream")
async def stream_stateless_run() -> Response:
    """Create a stateless run and stream its events (SSE)."""
    return await _stream(None)


async def _waiting(run_id: str, row: dict[str, Any] | None, headers: dict[str, str]
                   ) -> Response:
    """A run finished within the first keepalive interval is answered as a plain JSON
    response; a longer one streams newline heartbeats until its result is ready."""
    service = _service()
    keepalive_s = deps().config.http.keepalive_interval_s

    fresh = [row]  # the row read at creation: current for the first call only

    async def result() -> bytes:
        # long_poll calls again after each keepalive; from then on the service reads the
        # row itself, or its database check could never run (it comes every poll_s).
        known, fresh[0] = fresh[0], None
        return encode(wait_payload(await service.result(run_id, known)))

    payload: bytes | None = None
    with trio.move_on_after(keepalive_s):
        payload = await result()
    if payload is not None:
        return Response(payload, content_type="application/json", headers=headers)
    return Response(long_poll(result, keepalive_s=keepalive_s),
                    content_type="application/json", headers=headers)


@bp.post("/threads/<thread_id>/runs/wait")
async def wait_run(thread_id: str) -> Response:
    """Create a run and wait for its final state values."""
    run, _ = await _create(thread_id)
    return await _waiting(run["run_id"], None, _locations(run, "/join"))


@bp.post("/runs/wait")
async def wait_stateless_run() -> Response:
    """Create a stateless run and wait for its final state values."""
    run, _ = await _create(None)
    return await _waiting(run["run_id"], None, _locations(run, "/join"))


@bp.get("/threads/<thread_id>/runs")
async def list_runs(thread_id: str) -> Response:
    """List a thread's runs, newest first (a thread the caller may not see: ``[]``)."""
    limit = query_int("limit", 10, 1, 1000)
    offset = query_int("offset", 0, 0, 2**31 - 1)
    rows = await _service().list_runs(caller(), thread_id, limit=limit, offset=offset,
                                      status=request.args.get("status") or None)
    out = [run_json(r) for r in rows]
    select = query_list("select")
    if select:
        out = [{k: v for k, v in r.items() if k in select} for r in out]
    return json(out)


@bp.get("/threads/<thread_id>/runs/<run_id>")
async def get_run(thread_id: str, run_id: str) -> Response:
    """Get one run."""
    return json(run_json(await _service().get_run(caller(), thread_id, run_id)))


@bp.delete("/threads/<thread_id>/runs/<run_id>")
async def delete_run(thread_id: str, run_id: str) -> Response:
    """Delete a run (an in-flight one is cancelled first)."""
    await _service().delete_run(caller(), thread_id, run_id)
    return _no_content()


@bp.get("/threads/<thread_id>/runs/<run_id>/join")
async def join_run(thread_id: str, run_id: str) -> Response:
    """Wait for a run to finish and return its final values."""
    row = await _service().join_run(caller(), thread_id, run_id)
    return await _waiting(run_id, row, {"Location": f"/threads/{thread_id}/runs/{run_id}/join"})


@bp.get("/threads/<thread_id>/runs/<run_id>/stream")
async def join_stream(thread_id: str, run_id: str) -> Response:
    """Join a run's event stream; ``Last-Event-ID`` resumes after that event."""
    row = await _service().join_run(caller(), thread_id, run_id)
    return await _joined(row["thread_id"] if row else thread_id, run_id, row)


async def _joined(thread_id: str, run_id: str, row: dict[str, Any] | None) -> Response:
    service = _service()
    after = parse_event_id(request.headers.get("Last-Event-ID"))
    # The SDK sends ``stream_mode=`` (empty) when the caller gave none: that means all.
    modes = set(query_list("stream_mode")) or None
    if modes is not None:
        stream_modes(sorted(modes))  # 422 on an unknown mode, before the stream starts
    cancel = request.args.get("cancel_on_disconnect", "false").lower() in ("1", "true")
    if row is not None and row["status"] in TERMINAL and not await service.broker.has(run_id):
        await service.broker.finish(run_id, {"status": row["status"], "values": row["output"],
                                             "error": row["error"]})

    async def on_disconnect() -> None:
        await service.cancel([run_id], "interrupt")

    end = None
    if row is not None and row["status"] in TERMINAL:
        end = b'event: end\ndata: {"status":"%s"}\n\n' % row["status"].encode()
    events = run_events(lambda: service.broker.subscribe(run_id, after),
                        keepalive_s=deps().config.http.keepalive_interval_s, modes=modes,
                        on_disconnect=on_disconnect if cancel else None, run_id=run_id,
                        end_if_empty=end)
    base = f"/threads/{thread_id}/runs/{run_id}"
    return sse_response(events, {"Location": base + "/stream", "Content-Location": base})


@bp.get("/runs/<run_id>/stream")
async def join_stream_by_run(run_id: str) -> Response:
    """Join a run's event stream by run id alone (the JS client's stateless joinStream)."""
    row = await _service().join_run(caller(), None, run_id)
    return await _joined(row["thread_id"] if row else "", run_id, row)


@bp.post("/threads/<thread_id>/runs/<run_id>/cancel")
async def cancel_run(thread_id: str, run_id: str) -> Response:
    """Cancel a run (``action`` interrupt|rollback; ``wait=1`` until it has settled)."""
    service = _service()
    action = cancel_action(request.args.get("action"))
    wait = request.args.get("wait", "0").lower() in ("1", "true")
    row = await service.cancel_run(caller(), thread_id, run_id, action)
    if row["status"] in TERMINAL or not wait:
        # 200 with the run (the reference product's answer, which its clients check); the
        # platform says 202 with no body, and the SDK accepts either.
        return json(run_json(row))

    async def settled() -> bytes:
        await service.result(run_id, None)
        latest = await service.find(run_id)
        return encode(run_json(latest or {**row, "status": "interrupted"}))

    return Response(long_poll(settled, keepalive_s=deps().config.http.keepalive_interval_s),
                    content_type="application/json")


@bp.post("/runs/cancel")
async def cancel_many() -> Response:
    """Cancel many runs by thread, ids or status."""
    req = await body(CancelMany)
    action = cancel_action(request.args.get("action"))
    if req.thread_id is None and not req.run_ids and req.status is None:
        raise Invalid("invalid request body: give thread_id, run_ids or status", field="body")
    await _service().cancel_many(caller(), thread_id=req.thread_id, run_ids=req.run_ids,
                                 status=req.status, action=action)
    return _no_content()
