"""A run's execution parameters, from the request body and its assistant. Pure.

``build_params`` is everything a worker on any instance needs to run it from the id
alone; the run service calls it for requests and the cron service for firings (with the
cron owner's user). The caller's identity goes into ``config.configurable`` here, and
only here; the server-owned keys a client sends are dropped (spec/auth.md item 13).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aegra.domain.auth import strip_reserved, with_identity
from aegra.domain.errors import Invalid
from aegra.domain.runs import DEFAULT_MULTITASK, STREAM_MODES


def stream_modes(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return ["values"]
    modes = [value] if isinstance(value, str) else list(value)
    for mode in modes:
        if mode not in STREAM_MODES:
            raise Invalid(f"invalid field 'stream_mode': unknown stream mode {mode!r}; "
                          f"expected one of {sorted(STREAM_MODES)}", field="stream_mode")
    return modes or ["values"]


def _merge_config(base: dict[str, Any] | None, over: dict[str, Any] | None) -> dict[str, Any]:
    merged = dict(base or {})
    for key, value in (over or {}).items():
        if key == "configurable":
            if not isinstance(value, dict):
                raise Invalid("invalid field 'config.configurable': expected an object",
                              field="config.configurable")
            merged["configurable"] = {**(merged.get("configurable") or {}), **value}
        else:
            merged[key] = value
    return merged


def reserved_sent(body: dict[str, Any]) -> list[str]:
    """The server-owned keys a client put in ``config.configurable`` or ``context``."""
    configurable = (body.get("config") or {}).get("configurable")
    found = strip_reserved(configurable)[1] if isinstance(configurable, dict) else []
    context = body.get("context")
    if isinstance(context, dict):
        found += [k for k in strip_reserved(context)[1] if k not in found]
    return found


def build_params(body: dict[str, Any], assistant: dict[str, Any], threaded: bool,
                 user: dict[str, Any] | None = None,
                 headers: dict[str, Any] | None = None, request_id: str | None = None
                 ) -> dict[str, Any]:
    """Everything a worker on any instance needs to run it from the id alone.

    ``user`` is the caller's plain user dict (None: anonymous): it becomes the identity
    keys of ``config.configurable`` (spec/auth.md item 13). Whatever the client or the
    assistant put under those reserved keys, in the config or the context, is dropped.
    ``headers`` (``domain.headers.run_headers``: never a server-owned key) go into
    ``config.configurable`` over the body's values, as on the platform; not into context.
    ``request_id`` (the creating request's X-Request-ID) is ``langgraph_request_id``.
    """
    config = _merge_config(assistant.get("config"), body.get("config"))
    if headers:
        config["configurable"] = {**(config.get("configurable") or {}), **headers}
    if user is not None:
        config = with_identity(config, user)
    elif config.get("configurable"):
        configurable, dropped = strip_reserved(config["configurable"])
        if dropped:
            config["configurable"] = configurable
    if request_id is not None:  # a new dict: the assistant's own may be shared
        config["configurable"] = {**(config.get("configurable") or {}),
                                  "langgraph_request_id": request_id}
    context = {**(assistant.get("context") or {}), **(body.get("context") or {})}
    context = strip_reserved(context)[0] or {}
    checkpoint = dict(body.get("checkpoint") or {}) if threaded else {}
    if threaded and body.get("checkpoint_id"):
        checkpoint["checkpoint_id"] = body["checkpoint_id"]
    checkpoint.pop("thread_id", None)  # the path's thread wins, always
    durability = body.get("durability")
    if durability is None:  # the platform's default, stated in the run's kwargs as there
        durability = "exit" if body.get("checkpoint_during") is False else "async"
    command = body.get("command")
    run_input = body.get("input")
    if command is not None and run_input == {}:
        run_input = None
    return {
        "graph_id": assistant["graph_id"],
        "assistant_id": assistant["assistant_id"],
        "input": run_input,
        "command": command,
        "config": config,
        "context": context,
        "stream_mode": stream_modes(body.get("stream_mode")),
        "stream_subgraphs": bool(body.get("stream_subgraphs")),
        "stream_resumable": bool(body.get("stream_resumable")),
        "interrupt_before": body.get("interrupt_before"),
        "interrupt_after": body.get("interrupt_after"),
        "checkpoint": checkpoint or None,
        "durability": durability,
        "webhook": body.get("webhook"),
        "on_completion": body.get("on_completion") or "delete",
        "on_disconnect": body.get("on_disconnect") or "continue",
        "multitask_strategy": body.get("multitask_strategy") or DEFAULT_MULTITASK,
        "metadata": body.get("metadata") or {},
    }
