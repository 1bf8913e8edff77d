"""Cron endpoints (spec §7, seed 001): create (stateless or on a thread), search, count,
update, delete.

Creating an enabled cron (the default) makes its first run at once, in the same
transaction as the cron row, and answers that Run with the cron's own fields added where
the names do not clash (the Run's ``assistant_id``, ``thread_id``, ``metadata``,
``created_at``, ``updated_at`` win): clients typed for a Run (the Python SDK) and clients
typed for a Cron (the JS client, LangGraph Platform) both find what they expect. With
``enabled=false`` the answer is the Cron. Shapes follow the ``langgraph dev`` oracle:
``timezone`` is null when none was given (the schedule runs in UTC), search is newest
first, ``on_run_completed`` is null on thread-bound crons.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

import msgspec
from quart import Blueprint, Response, g

from aegra.adapters.postgres.assistants import canonical_id
from aegra.adapters.postgres.crons import SORTABLE, NewCron, PgCrons, to_cron
from aegra.api.deps import deps, services
from aegra.api.run_models import run_json
from aegra.api.wire import body, json
from aegra.domain import crons
from aegra.domain.errors import Draining, Invalid
from aegra.domain.runs import new_run_id
from aegra.services.runs import RunService, stream_modes
from aegra.supervisor.cron import after_commit, cron_run

bp = Blueprint("crons", __name__)

Strategy = Literal["reject", "interrupt", "rollback", "enqueue"]
Durability = Literal["sync", "async", "exit"]
SortBy = Literal["cron_id", "assistant_id", "thread_id", "created_at", "updated_at",
                 "next_run_date", "end_time"]
SelectField = Literal["cron_id", "assistant_id", "thread_id", "end_time", "schedule",
                      "timezone", "created_at", "updated_at", "user_id", "payload",
                      "next_run_date", "metadata", "now", "on_run_completed", "enabled"]
# Body fields that make up the run template (``payload``) every firing is built from.
TEMPLATE = ("input", "config", "context", "checkpoint_during", "interrupt_before",
            "interrupt_after", "webhook", "multitask_strategy", "stream_mode",
            "stream_subgraphs", "stream_resumable", "durability")


class _Template(msgspec.Struct, kw_only=True):
    input: Any = None
    metadata: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    checkpoint_during: bool | None = None
    interrupt_before: str | list[str] | None = None
    interrupt_after: str | list[str] | None = None
    webhook: str | None = None
    on_run_completed: Literal["delete", "keep"] | None = None
    multitask_strategy: Strategy | None = None
    enabled: bool | None = None
    timezone: str | None = None
    stream_mode: str | list[str] | None = None
    stream_subgraphs: bool | None = None
    stream_resumable: bool | None = None
    durability: Durability | None = None


class CronCreate(_Template, kw_only=True):
    assistant_id: str
    schedule: str
    end_time: dt.datetime | None = None


class CronPatch(_Template, kw_only=True):
    schedule: str | None = None
    # UNSET: leave it; null: clear it (the SDK sends an explicit null for that).
    end_time: dt.datetime | None | msgspec.UnsetType = msgspec.UNSET


class CronSearch(msgspec.Struct, kw_only=True):
    assistant_id: str | None = None
    thread_id: str | None = None
    enabled: bool | None = None
    metadata: dict[str, Any] | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 10
    offset: Annotated[int, msgspec.Meta(ge=0)] = 0
    sort_by: SortBy | None = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[SelectField] | None = None


class CronCount(msgspec.Struct, kw_only=True):
    assistant_id: str | None = None
    thread_id: str | None = None
    enabled: bool | None = None
    metadata: dict[str, Any] | None = None


assert set(SortBy.__args__) == set(SORTABLE)  # type: ignore[attr-defined]


def _service() -> RunService:
    return services().runs


def _store() -> PgCrons:
    return PgCrons(deps().pg)


def _user() -> str | None:
    """The caller's identity, once an auth layer sets one; crons are scoped to it."""
    user: str | None = g.get("user_id")
    return user


def _template(req: _Template) -> dict[str, Any]:
    """The run template fields the request carries, validated before anything is written."""
    out = {k: getattr(req, k) for k in TEMPLATE if getattr(req, k) is not None}
    if req.webhook is not None:
        url = urlparse(req.webhook)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise Invalid("invalid field 'webhook': expected an http(s) URL", field="webhook")
    configurable = (req.config or {}).get("configurable")
    if configurable is not None and not isinstance(configurable, dict):
        raise Invalid("invalid field 'config.configurable': expected an object",
                      field="config.configurable")
    stream_modes(req.stream_mode)  # 422 on an unknown mode
    return msgspec.to_builtins(out)  # type: ignore[no-any-return]


def _end_time(value: dt.datetime | None, now: dt.datetime) -> dt.datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)  # a time without a zone is taken as UTC
    if value <= now:
        raise Invalid("invalid field 'end_time': must be in the future", field="end_time")
    return value


def _mask(url: str) -> str:
    """Webhook credentials never round-trip to readers of the cron."""
    parsed = urlparse(url)
    if parsed.username is None and parsed.password is None:
        return url
    return parsed._replace(netloc="****@" + parsed.netloc.rpartition("@")[2]).geturl()


def cron_json(row: dict[str, Any]) -> dict[str, Any]:
    out = to_cron(row)
    webhook = (out.get("payload") or {}).get("webhook")
    if isinstance(webhook, str):
        out["payload"] = {**out["payload"], "webhook": _mask(webhook)}
    return out


async def _create(thread_id: str | None) -> Response:
    req = await body(CronCreate)
    d = deps()
    cfg = d.config.cron
    service = _service()
    schedule = crons.parse(req.schedule, req.timezone,
                           allow_seconds=cfg.allow_seconds_schedule)
    now = dt.datetime.now(dt.UTC)
    end_time = _end_time(req.end_time, now)
    template = _template(req)
    assistant = await service.assistant(req.assistant_id)  # a graph id resolves here
    enabled = req.enabled is not False
    if enabled and service.intake_stopped is not None and service.intake_stopped.is_set():
        raise Draining("this instance is draining; retry on another instance")
    new = NewCron(
        cron_id=new_run_id(), assistant_id=assistant["assistant_id"], thread_id=thread_id,
        user_id=_user(), schedule=schedule.expr, timezone=req.timezone, end_time=end_time,
        enabled=enabled,
        on_run_completed=(req.on_run_completed or "delete") if thread_id is None else None,
        payload=template, metadata=req.metadata or {},
        next_run_date=crons.next_fire(schedule, now, end_time))
    # Built even when disabled: a template that cannot make a run is refused now.
    first = cron_run(msgspec.structs.asdict(new), assistant, None)
    row, created = await _store().create(new, first if enabled else None,
                                         max_per_user=cfg.max_per_user)
    cron = cron_json(row)
    if created is None:
        return json(cron)
    await after_commit(service.queue, service._apply, created)
    out = run_json(created.run)
    for key, value in cron.items():
        out.setdefault(key, value)
    return json(out, headers={"Content-Location": f"/threads/{out['thread_id']}/runs/"
                                                  f"{out['run_id']}"})


@bp.post("/runs/crons")
async def create_cron() -> Response:
    """Create a stateless cron (a new thread per firing); enabled: run it once now."""
    return await _create(None)


@bp.post("/threads/<thread_id>/runs/crons")
async def create_thread_cron(thread_id: str) -> Response:
    """Create a cron whose firings continue one thread; enabled: run it once now."""
    return await _create(thread_id)


@bp.patch("/runs/crons/<cron_id>")
async def update_cron(cron_id: str) -> Response:
    """Update a cron; a new schedule keeps the old timezone unless one is given."""
    req = await body(CronPatch)
    cfg = deps().config.cron
    now = dt.datetime.now(dt.UTC)
    if req.schedule is not None:  # refused before the row is locked
        crons.parse(req.schedule, req.timezone, allow_seconds=cfg.allow_seconds_schedule)
    elif req.timezone is not None:
        crons.zone(req.timezone)
    end_time = req.end_time if req.end_time is msgspec.UNSET else _end_time(req.end_time, now)
    template = _template(req)

    def patch(row: dict[str, Any]) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        for key in ("schedule", "timezone", "enabled", "on_run_completed", "metadata"):
            if getattr(req, key) is not None:
                changes[key] = getattr(req, key)
        if end_time is not msgspec.UNSET:
            changes["end_time"] = end_time
        if template:
            changes["payload"] = {**(row["payload"] or {}), **template}
        schedule = crons.parse(changes.get("schedule", row["schedule"]),
                               changes.get("timezone", row["timezone"]))
        if "schedule" in changes:
            changes["schedule"] = schedule.expr
        turned_on = changes.get("enabled") is True and not row["enabled"]
        # A re-enabled cron resumes from now: the occurrences it slept through never fire.
        if turned_on or {"schedule", "timezone", "end_time"} & set(changes):
            changes["next_run_date"] = crons.next_fire(
                schedule, now, changes.get("end_time", row["end_time"]))
        return changes

    return json(cron_json(await _store().update(cron_id, _user(), patch)))


@bp.delete("/runs/crons/<cron_id>")
async def delete_cron(cron_id: str) -> Response:
    """Delete a cron (its past runs stay)."""
    await _store().delete(cron_id, _user())
    return Response(b"", status=204)  # explicit body: see api/runs.py _no_content


def _assistant_filter(value: str | None) -> str | None:
    return canonical_id(deps().graphs, value) if value else None


@bp.post("/runs/crons/search")
async def search_crons() -> Response:
    """Search crons, newest first unless ``sort_by``/``sort_order`` say otherwise."""
    req = await body(CronSearch)
    rows = await _store().search(
        user_id=_user(), assistant_id=_assistant_filter(req.assistant_id),
        thread_id=req.thread_id, enabled=req.enabled, metadata=req.metadata,
        limit=req.limit, offset=req.offset, sort_by=req.sort_by or "created_at",
        sort_order=req.sort_order or "desc")
    out = [cron_json(r) for r in rows]
    if req.select:
        now = dt.datetime.now(dt.UTC).isoformat()
        out = [{k: now if k == "now" else c.get(k) for k in req.select} for c in out]
    return json(out)


@bp.post("/runs/crons/count")
async def count_crons() -> Response:
    """Count crons matching the filters (a bare integer)."""
    req = await body(CronCount)
    return json(await _store().count(
        user_id=_user(), assistant_id=_assistant_filter(req.assistant_id),
        thread_id=req.thread_id, enabled=req.enabled, metadata=req.metadata))
