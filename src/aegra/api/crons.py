"""Cron endpoints (spec §7, seed 001): create (stateless or on a thread), read, search,
count, update, delete. Each handler decodes, calls one ``CronService`` method with the
caller, and encodes; the rules (authorization, owners, schedules) live in the service.

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
import uuid
from typing import Annotated, Any, Literal

import msgspec
from quart import Blueprint, Response

from aegra.api.auth import caller
from aegra.api.deps import services
from aegra.api.run_models import checked_webhook, run_json
from aegra.api.wire import body, check_config, json
from aegra.domain.crons import SORTABLE, cron_view
from aegra.domain.errors import Invalid
from aegra.domain.webhooks import mask
from aegra.services.crons import CronChanges, CronQuery, CronService, CronSpec
from aegra.services.runs import stream_modes

bp = Blueprint("crons", __name__)

MAX_OFFSET = 2**31 - 1

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
    offset: Annotated[int, msgspec.Meta(ge=0, le=MAX_OFFSET)] = 0
    sort_by: SortBy | None = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[SelectField] | None = None


class CronCount(msgspec.Struct, kw_only=True):
    assistant_id: str | None = None
    thread_id: str | None = None
    enabled: bool | None = None
    metadata: dict[str, Any] | None = None


assert set(SortBy.__args__) == set(SORTABLE)  # type: ignore[attr-defined]


def _service() -> CronService:
    return services().crons


def _template(req: _Template) -> dict[str, Any]:
    """The run template fields the request carries, validated before anything is written."""
    out = {k: getattr(req, k) for k in TEMPLATE if getattr(req, k) is not None}
    if req.webhook is not None:
        checked_webhook(req.webhook)
    if req.config is not None:
        check_config(req.config)
    stream_modes(req.stream_mode)  # 422 on an unknown mode
    return msgspec.to_builtins(out)  # type: ignore[no-any-return]


def cron_json(row: dict[str, Any]) -> dict[str, Any]:
    out = cron_view(row)
    webhook = (out.get("payload") or {}).get("webhook")
    if isinstance(webhook, str):
        # Webhook credentials never round-trip to readers of the cron.
        out["payload"] = {**out["payload"], "webhook": mask(webhook)}
    return out


async def _create(thread_id: str | None) -> Response:
    req = await body(CronCreate)
    spec = CronSpec(assistant_id=req.assistant_id, schedule=req.schedule,
                    timezone=req.timezone, end_time=req.end_time,
                    enabled=req.enabled is not False, on_run_completed=req.on_run_completed,
                    metadata=req.metadata or {}, template=_template(req))
    row, run = await _service().create(caller(), spec, thread_id=thread_id)
    cron = cron_json(row)
    if run is None:
        return json(cron)
    out = run_json(run)
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


def _cron_id(raw: str) -> str:
    """Canonical UUID text; the platform refuses other cron ids with 422."""
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise Invalid("Invalid cron ID: must be a UUID", field="cron_id") from None


@bp.get("/runs/crons/<cron_id>")
async def get_cron(cron_id: str) -> Response:
    """One cron (the platform's read, since 0.10)."""
    return json(cron_json(await _service().get(caller(), _cron_id(cron_id))))


@bp.patch("/runs/crons/<cron_id>")
async def update_cron(cron_id: str) -> Response:
    """Update a cron; a new schedule keeps the old timezone unless one is given."""
    cid = _cron_id(cron_id)
    req = await body(CronPatch)
    changes = CronChanges(schedule=req.schedule, timezone=req.timezone,
                          end_time=req.end_time, enabled=req.enabled,
                          on_run_completed=req.on_run_completed, metadata=req.metadata,
                          template=_template(req))
    return json(cron_json(await _service().update(caller(), cid, changes)))


@bp.delete("/runs/crons/<cron_id>")
async def delete_cron(cron_id: str) -> Response:
    """Delete a cron (its past runs stay)."""
    await _service().delete(caller(), _cron_id(cron_id))
    return Response(b"", status=204)  # explicit body: see api/runs.py _no_content


@bp.post("/runs/crons/search")
async def search_crons() -> Response:
    """Search crons, newest first unless ``sort_by``/``sort_order`` say otherwise."""
    req = await body(CronSearch)
    query = CronQuery(assistant_id=req.assistant_id, thread_id=req.thread_id,
                      enabled=req.enabled, metadata=req.metadata)
    rows = await _service().search(caller(), query, limit=req.limit, offset=req.offset,
                                   sort_by=req.sort_by, sort_order=req.sort_order)
    out = [cron_json(r) for r in rows]
    if req.select:
        now = dt.datetime.now(dt.UTC).isoformat()
        out = [{k: now if k == "now" else c.get(k) for k in req.select} for c in out]
    return json(out)


@bp.post("/runs/crons/count")
async def count_crons() -> Response:
    """Count crons matching the filters (a bare integer)."""
    req = await body(CronCount)
    return json(await _service().count(caller(), CronQuery(
        assistant_id=req.assistant_id, thread_id=req.thread_id, enabled=req.enabled,
        metadata=req.metadata)))
