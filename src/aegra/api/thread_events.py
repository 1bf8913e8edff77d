"""Agent Protocol v2 thread streaming over HTTP, as ``client.threads.stream(...)`` speaks it.

* ``POST /threads/{thread_id}/commands``: one command ``{id, method, params}``, answered
  with a response envelope (``success`` or ``error``). Protocol errors (unknown command,
  bad params, no such interrupt) are envelopes with HTTP 200, as the SDK reads them; an
  envelope without an integer ``id`` or a string ``method`` is a 400. What the run
  service refuses (a hidden thread, a busy one, a draining instance) keeps its HTTP
  status, as on the run endpoints.
* ``POST /threads/{thread_id}/stream/events``: the thread's events as SSE, filtered by
  ``channels`` / ``namespaces`` / ``depth`` and resumed after ``since``; a bad filter is a
  422 naming the field, before the stream starts.

The WebSocket twin of the event stream is ``thread_events_ws``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

import msgspec
from quart import Blueprint, Response, request

from aegra.api.auth import caller
from aegra.api.deps import deps, services
from aegra.api.run_models import RunCreate, validate
from aegra.api.sse import KEEPALIVE, sse_response
from aegra.api.wire import check_config, encode, field_of
from aegra.domain.auth import Caller
from aegra.domain.errors import Invalid
from aegra.domain.protocol_filter import error, parse_filter, success
from aegra.services.thread_commands import Headers, NoSuchInterrupt, ThreadCommands
from aegra.services.thread_events import Batch, ThreadEvents

bp = Blueprint("thread_events", __name__)
# Defined by the protocol; this server answers them ``not_supported``.
UNSUPPORTED = frozenset({"subscription.subscribe", "subscription.unsubscribe",
                         "subscription.reconnect", "agent.getTree", "input.inject",
                         "state.get", "state.listCheckpoints", "state.fork"})
RUN_START_KEYS = ("assistant_id", "input", "config", "context", "metadata",
                  "interrupt_before", "interrupt_after", "multitask_strategy")


def as_bytes(frame: str | bytes) -> bytes:
    return frame.encode() if isinstance(frame, str) else frame


def _json(value: object, status: int = 200) -> Response:
    return Response(encode(value), status=status, content_type="application/json")


def parse_command(raw: bytes) -> tuple[int, str, dict[str, Any]]:
    """``(id, method, params)`` of a command, or Invalid naming the field."""
    try:
        payload = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        raise Invalid("invalid field 'body': not valid JSON", field="body") from None
    if not isinstance(payload, dict):
        raise Invalid("invalid field 'body': expected a command object", field="body")
    cmd_id = payload.get("id")
    if not isinstance(cmd_id, int) or isinstance(cmd_id, bool):
        raise Invalid("invalid field 'id': a command needs an integer id", field="id")
    method = payload.get("method")
    if not isinstance(method, str):
        raise Invalid("invalid field 'method': a command needs a string method",
                      field="method")
    params = payload.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise Invalid("invalid field 'params': expected an object", field="params")
    return cmd_id, method, params


def _run_body(params: dict[str, Any]) -> dict[str, Any]:
    body = {k: params[k] for k in RUN_START_KEYS if params.get(k) is not None}
    if "multitask_strategy" not in body and params.get("multitaskStrategy") is not None:
        body["multitask_strategy"] = params["multitaskStrategy"]
    if not isinstance(body.get("assistant_id"), str) or not body["assistant_id"]:
        raise Invalid("invalid field 'params.assistant_id': run.start needs an assistant id",
                      field="params.assistant_id")
    try:
        create = msgspec.convert(body, RunCreate)
    except msgspec.ValidationError as exc:
        field = f"params.{field_of(str(exc)) or ''}".rstrip(".")
        raise Invalid(f"invalid field '{field}': {str(exc).split(' - at ')[0]}",
                      field=field) from None
    try:
        return validate(create, stateless=False)
    except Invalid as exc:  # named as the run body; here it sits under ``params``
        field = f"params.{exc.field or 'input'}"
        raise Invalid(exc.message.replace(f"'{exc.field}'", f"'{field}'"),
                      field=field) from None


def _namespace(value: object, field: str) -> None:
    if value is not None and not (isinstance(value, list)
                                  and all(isinstance(s, str) for s in value)):
        raise Invalid(f"invalid field '{field}': expected a list of strings", field=field)


def _answers(params: dict[str, Any]) -> dict[str, Any]:
    """``input.respond``'s interrupt id -> response (one, or a ``responses`` batch)."""
    entries = params.get("responses")
    if entries is None:
        entries, prefix = [params], "params."
    elif not isinstance(entries, list) or not entries:
        raise Invalid("invalid field 'params.responses': expected a non-empty list",
                      field="params.responses")
    else:
        prefix = "params.responses[{}]."
    answers: dict[str, Any] = {}
    for i, entry in enumerate(entries):
        where = prefix.format(i)
        if not isinstance(entry, dict) or not isinstance(entry.get("interrupt_id"), str):
            raise Invalid(f"invalid field '{where}interrupt_id': expected a string",
                          field=f"{where}interrupt_id")
        _namespace(entry.get("namespace"), f"{where}namespace")
        answers[entry["interrupt_id"]] = entry.get("response")
    for key in ("config", "metadata", "update"):
        value = params.get(key)
        if value is not None and not isinstance(value, (dict, list) if key == "update"
                                                else dict):
            raise Invalid(f"invalid field 'params.{key}': expected an object",
                          field=f"params.{key}")
    if params.get("config") is not None:
        check_config(params["config"], "params.config")
    return answers


async def dispatch(who: Caller, thread_id: str, cmd_id: int, method: str,
                   params: dict[str, Any], headers: Headers) -> dict[str, Any]:
    """The response envelope for one well-formed command. ``headers``: the request's (the
    WebSocket handshake's), for ``http.configurable_headers`` of the runs it starts."""
    commands = ThreadCommands(services().runs, services().threads)
    try:
        if method == "run.start":
            run_id, through = await commands.start(who, thread_id, _run_body(params),
                                                   headers=headers)
            return success(cmd_id, {"run_id": run_id}, through)
        if method == "input.respond":
            answers = _answers(params)
            run_id, through = await commands.respond(who, thread_id, answers, params,
                                                     headers=headers)
            return success(cmd_id, {"run_id": run_id}, through)
    except Invalid as exc:
        return error(cmd_id, "invalid_argument", exc.message)
    except NoSuchInterrupt as exc:
        return error(cmd_id, "no_such_interrupt", str(exc))
    if method in UNSUPPORTED:
        return error(cmd_id, "not_supported", f"{method} is not supported by this server")
    return error(cmd_id, "unknown_command", f"unknown command {method!r}")


@bp.post("/threads/<thread_id>/commands")
async def command(thread_id: str) -> Response:
    """Run one protocol command on a thread."""
    raw = as_bytes(await request.get_data(as_text=False))
    try:
        cmd_id, method, params = parse_command(raw)
    except Invalid as exc:
        return _json(error(None, "invalid_argument", exc.message) | {"field": exc.field}, 400)
    return _json(await dispatch(caller(), thread_id, cmd_id, method, params,
                                request.headers))


def sse_frame(event: dict[str, Any]) -> bytes:
    return b"event: %s\ndata: %s\nid: %d\n\n" % (event["method"].encode(), encode(event),
                                                 event["seq"])


async def _sse(batches: AsyncGenerator[Batch | None, None]) -> AsyncIterator[bytes]:
    async with aclosing(batches):
        async for batch in batches:
            yield KEEPALIVE if batch is None else b"".join(sse_frame(e) for e in batch)


@bp.post("/threads/<thread_id>/stream/events")
async def stream_events(thread_id: str) -> Response:
    """The thread's protocol events as SSE (replay after ``since``, then live)."""
    raw = as_bytes(await request.get_data(as_text=False))
    try:
        body = msgspec.json.decode(raw or b"{}")
    except (msgspec.DecodeError, RecursionError):
        raise Invalid("invalid field 'body': not valid JSON", field="body") from None
    flt = parse_filter(body)
    d = deps()
    events = ThreadEvents(services().runs, idle_s=d.config.stream.thread_idle_s)
    start = await events.open(caller(), thread_id)
    body_iter = events.events(thread_id, flt, start,
                              keepalive_s=d.config.http.keepalive_interval_s)
    return sse_response(_sse(body_iter), {})
