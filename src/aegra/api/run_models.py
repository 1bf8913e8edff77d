"""Wire shapes of the run endpoints: the RunCreate body, bulk cancel, the Run object."""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

import msgspec
from quart import request

from aegra import tracecontext
from aegra.api.deps import deps
from aegra.api.wire import check_config
from aegra.domain import webhooks
from aegra.domain.errors import Invalid
from aegra.services.runs import stream_modes

# A run may wait at most a year to start: past that the number is a mistake (and a
# float this large would overflow PostgreSQL's interval).
MAX_AFTER_SECONDS = 365 * 24 * 3600
AfterSeconds = Annotated[float, msgspec.Meta(ge=0, le=MAX_AFTER_SECONDS)]


class RunCreate(msgspec.Struct, kw_only=True):
    assistant_id: str
    input: Any = None
    command: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    stream_mode: str | list[str] | None = None
    stream_subgraphs: bool | None = None
    stream_resumable: bool | None = None
    interrupt_before: str | list[str] | None = None
    interrupt_after: str | list[str] | None = None
    checkpoint: dict[str, Any] | None = None
    checkpoint_id: str | None = None
    checkpoint_during: bool | None = None
    durability: Literal["sync", "async", "exit"] | None = None
    multitask_strategy: Literal["reject", "interrupt", "rollback", "enqueue"] | None = None
    if_not_exists: Literal["create", "reject"] | None = None
    on_disconnect: Literal["cancel", "continue"] | None = None
    on_completion: Literal["delete", "keep"] | None = None
    after_seconds: AfterSeconds | None = None
    webhook: str | None = None
    feedback_keys: list[str] | None = None
    langsmith_tracer: dict[str, Any] | None = None
    strict_resume: bool | None = None
    thread_id: str | None = None  # /runs/batch only


class CancelMany(msgspec.Struct, kw_only=True):
    thread_id: str | None = None
    run_ids: list[str] | None = None
    status: Literal["pending", "running", "all"] | None = None


def query_int(name: str, default: int, lo: int, hi: int) -> int:
    """An integer query parameter within [lo, hi]; anything else is a 422 naming it."""
    raw = request.args.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise Invalid(f"invalid query parameter '{name}': expected an integer, got {raw!r}",
                      field=name) from None
    if not lo <= value <= hi:
        raise Invalid(f"invalid query parameter '{name}': must be between {lo} and {hi}",
                      field=name)
    return value


T = TypeVar("T")


def iso(value: T) -> T | str:
    return value.isoformat() if hasattr(value, "isoformat") else value


def checked_webhook(url: str) -> str:
    """422 unless the project's webhook policy (aegra.json ``webhooks.url``) allows it."""
    return webhooks.check_url(url, deps().project.webhooks.url)


def run_json(row: dict[str, Any]) -> dict[str, Any]:
    params = row["execution_params"] or {}
    if isinstance(params.get("webhook"), str):  # credentials never reach readers
        params = {**params, "webhook": webhooks.mask(params["webhook"])}
    if tracecontext.PARAM in params:  # the worker's, not the client's: kwargs stay as sent
        params = {k: v for k, v in params.items() if k != tracecontext.PARAM}
    return {
        "run_id": row["run_id"], "thread_id": row["thread_id"],
        "assistant_id": row["assistant_id"], "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]), "status": row["status"],
        "metadata": row["metadata"], "multitask_strategy": row["multitask_strategy"],
        "kwargs": params,
        # The reference product's fields, kept alongside the platform's.
        "input": params.get("input"), "output": row.get("output"),
        "error_message": (row.get("error") or {}).get("message"),
        "config": params.get("config"), "context": params.get("context"),
        "user_id": row.get("user_id"),
    }


def validate(create: RunCreate, *, stateless: bool) -> dict[str, Any]:
    raw = msgspec.to_builtins(create)
    if create.input is not None and create.command is not None and create.input != {}:
        raise Invalid("invalid field 'command': 'input' and 'command' are mutually exclusive",
                      field="command")
    if stateless and create.input is None and create.command is None:
        # A new thread has no checkpoint to resume: the run could only fail (the platform
        # fails it with EmptyInputError). Refused up front, as the reference product does.
        raise Invalid("invalid request body: give 'input' or 'command'", field="input")
    stream_modes(create.stream_mode)  # 422 on an unknown mode, before anything is written
    if create.config is not None:
        check_config(create.config)
    if create.webhook is not None:
        checked_webhook(create.webhook)
    return {k: v for k, v in raw.items() if v is not None}


def cancel_action(value: str | None) -> str:
    """``rollback`` or ``interrupt``. As on the platform any other value means interrupt;
    the reference product's ``cancel`` is one of those."""
    return "rollback" if value == "rollback" else "interrupt"
