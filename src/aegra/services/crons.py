"""Crons: create (with its first run), read, update, delete, search, count.

Every method takes the caller first; authorization runs here and its filter is applied
inside the store's query (spec/auth.md items 10, 11, 14): a cron the filter hides is
NotFound, exactly like a missing one. Creating also needs ``assistants.read`` on a
user-made assistant (system assistants serve everyone, item 12) and ``threads.read`` on
the thread of a thread-bound cron; both filters are checked inside the create
transaction. Search and count also apply ``threads.read``/``threads.search`` to the
thread of a thread-bound cron, as the platform does.

A cron remembers its owner: ``user_id`` is the caller's identity (``CRON_MAX_PER_USER``
counts per identity) and the owner's plain user dict rides in the payload under
``domain.crons.OWNER_KEY`` (never shown to clients), so every firing, here or by the
ticker on any instance, runs as the owner (``domain.crons.cron_run``).

Creating an enabled cron makes its first run at once, in the same transaction as the
cron row; ``after_commit`` queues it (the ticker queues its firings the same way).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import trio

from aegra.config import CronCfg
from aegra.domain import crons
from aegra.domain.admin import MaintenanceOn
from aegra.domain.assistants import as_uuid, is_system
from aegra.domain.auth import Caller, Filter, strip_reserved, user_dict
from aegra.domain.errors import Draining, Invalid
from aegra.domain.ports import Authorizer, JobQueue
from aegra.domain.resource_ports import CronStore
from aegra.domain.run_rows import Cancelled, Created
from aegra.domain.runs import DEFAULT_MULTITASK, new_run_id
from aegra.services.admin import Maintenance
from aegra.services.runs import build_params

Json = dict[str, Any]
Settle = Callable[[Cancelled], Awaitable[None]]  # cancels what a multitask rule displaced


class CronSpec(msgspec.Struct, kw_only=True):
    """A cron to create. ``template`` holds the run fields every firing is built from
    (input, config, ...), already validated by the edge."""

    assistant_id: str
    schedule: str
    timezone: str | None = None
    end_time: dt.datetime | None = None
    enabled: bool = True
    on_run_completed: str | None = None
    metadata: Json = {}
    template: Json = {}


class CronChanges(msgspec.Struct, kw_only=True):
    """A cron update: None leaves a field; ``end_time`` None clears it, UNSET leaves it."""

    schedule: str | None = None
    timezone: str | None = None
    end_time: dt.datetime | None | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | None = None
    on_run_completed: str | None = None
    metadata: Json | None = None
    template: Json = {}


class CronQuery(msgspec.Struct, kw_only=True):
    assistant_id: str | None = None  # an assistant id or a graph id
    thread_id: str | None = None
    enabled: bool | None = None
    metadata: Json | None = None


async def after_commit(queue: JobQueue, settle: Settle, created: Created) -> None:
    """Queue a committed run; cancel what its multitask strategy displaced."""
    await queue.put(created.run["run_id"])
    if created.cancelled.running or created.cancelled.settled:
        await settle(created.cancelled)


def without_reserved(template: Json) -> Json:
    """The run template without the server-owned keys a client may have put into
    ``config.configurable`` or ``context`` (spec/auth.md item 13): a firing's identity
    is its owner's, set when it is built."""
    out = dict(template)
    config = out.get("config")
    if isinstance(config, dict) and isinstance(config.get("configurable"), dict):
        configurable, _ = strip_reserved(config["configurable"])
        out["config"] = {**config, "configurable": configurable}
    if isinstance(out.get("context"), dict):
        out["context"], _ = strip_reserved(out["context"])
    return out


def future_end_time(value: dt.datetime | None, now: dt.datetime) -> dt.datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)  # a time without a zone is taken as UTC
    if value <= now:
        raise Invalid("invalid field 'end_time': must be in the future", field="end_time")
    return value


class CronService:
    def __init__(self, *, store: CronStore, auth: Authorizer, cfg: CronCfg,
                 queue: JobQueue, settle: Settle,
                 intake_stopped: trio.Event | None = None) -> None:
        self.store = store
        self.auth = auth
        self.cfg = cfg
        self.queue = queue
        self.settle = settle
        self.intake_stopped = intake_stopped
        # Maintenance mode (wired by the root): an enabled cron's first run is refused.
        self.maintenance: Maintenance | None = None

    async def _allow(self, caller: Caller, action: str, value: Json) -> Filter | None:
        return await self.auth.authorize(caller, "crons", action, value)

    # -- create -------------------------------------------------------------------------
    async def create(self, caller: Caller, spec: CronSpec, *, thread_id: str | None = None
                     ) -> tuple[Json, Json | None]:
        """``(cron row, its first run row or None when disabled)``."""
        schedule = crons.parse(spec.schedule, spec.timezone,
                               allow_seconds=self.cfg.allow_seconds_schedule)
        now = dt.datetime.now(dt.UTC)
        end_time = future_end_time(spec.end_time, now)
        cron_id = new_run_id()
        template = without_reserved(spec.template)
        value: Json = {"payload": dict(template), "schedule": schedule.expr,
                       "cron_id": as_uuid(cron_id),
                       "thread_id": as_uuid(thread_id) if thread_id is not None else None,
                       "user_id": caller.identity, "end_time": end_time,
                       "metadata": dict(spec.metadata)}
        await self._allow(caller, "create", value)  # a new id: no filter to apply
        metadata = value.get("metadata") or {}
        assistant = await self.store.assistant(spec.assistant_id)
        assistant_where = None
        if not is_system(assistant.get("metadata")):
            assistant_where = await self.auth.authorize(
                caller, "assistants", "read",
                {"assistant_id": as_uuid(assistant["assistant_id"]), "metadata": {}})
        thread_where = None
        if thread_id is not None:
            thread_where = await self.auth.authorize(
                caller, "threads", "read", {"thread_id": value["thread_id"],
                                            "metadata": metadata})
        if spec.enabled and self.intake_stopped is not None and self.intake_stopped.is_set():
            raise Draining("this instance is draining; retry on another instance")
        if spec.enabled and self.maintenance is not None and await self.maintenance.on():
            raise MaintenanceOn()
        payload = dict(template)
        if caller.identity is not None:
            payload[crons.OWNER_KEY] = caller.user or user_dict(
                caller.identity, caller.permissions, {})
        if self.auth.enabled:
            # Firings create runs as the owner: their create_run handler runs once, here,
            # and what it stamps goes on every firing's run (and stateless thread).
            strategy = template.get("multitask_strategy") or DEFAULT_MULTITASK
            run_value: Json = {
                "thread_id": value["thread_id"], "assistant_id": as_uuid(
                    assistant["assistant_id"]), "run_id": None, "status": "pending",
                "metadata": {}, "kwargs": dict(template),
                "multitask_strategy": strategy, "if_not_exists": "reject",
                "after_seconds": 0, "prevent_insert_if_inflight": strategy == "reject"}
            await self.auth.authorize(caller, "threads", "create_run", run_value)
            if run_value.get("metadata"):
                payload[crons.RUN_METADATA_KEY] = dict(run_value["metadata"])
        new = crons.NewCron(
            cron_id=cron_id, assistant_id=assistant["assistant_id"], thread_id=thread_id,
            user_id=caller.identity, schedule=schedule.expr, timezone=spec.timezone,
            end_time=end_time, enabled=spec.enabled,
            on_run_completed=(spec.on_run_completed or "delete") if thread_id is None
            else None,
            payload=payload, metadata=metadata,
            next_run_date=crons.next_fire(schedule, now, end_time))
        # Built even when disabled: a template that cannot make a run is refused now.
        first = crons.cron_run(msgspec.structs.asdict(new), assistant, None, build_params)
        row, created = await self.store.create(
            new, first if spec.enabled else None, max_per_user=self.cfg.max_per_user,
            assistant_where=assistant_where, thread_where=thread_where)
        if created is None:
            return row, None
        await after_commit(self.queue, self.settle, created)
        return row, created.run

    # -- read, update, delete -----------------------------------------------------------
    async def get(self, caller: Caller, cron_id: str) -> Json:
        flt = await self._allow(caller, "read", {"cron_id": as_uuid(cron_id)})
        return await self.store.get(cron_id, where=flt)

    async def update(self, caller: Caller, cron_id: str, changes: CronChanges) -> Json:
        """A new schedule keeps the old timezone unless one is given; given metadata
        replaces the cron's (as edited by the handler); the template merges into the
        payload, which keeps its owner."""
        if changes.schedule is not None:  # refused before the row is locked
            crons.parse(changes.schedule, changes.timezone,
                        allow_seconds=self.cfg.allow_seconds_schedule)
        elif changes.timezone is not None:
            crons.zone(changes.timezone)
        now = dt.datetime.now(dt.UTC)
        end_time = (changes.end_time if changes.end_time is msgspec.UNSET
                    else future_end_time(changes.end_time, now))
        changes = msgspec.structs.replace(changes, template=without_reserved(changes.template))
        value: Json = {"cron_id": as_uuid(cron_id), "payload": changes.template or None,
                       "schedule": changes.schedule,
                       "end_time": None if end_time is msgspec.UNSET else end_time,
                       "enabled": changes.enabled,
                       "on_run_completed": changes.on_run_completed}
        if changes.metadata is not None:
            value["metadata"] = dict(changes.metadata)
        flt = await self._allow(caller, "update", value)
        metadata = value.get("metadata") if changes.metadata is not None else None
        patch = _patcher(changes, metadata, end_time, now)
        return await self.store.update(cron_id, patch, where=flt)

    async def delete(self, caller: Caller, cron_id: str) -> None:
        """Delete a cron (its past runs stay)."""
        flt = await self._allow(caller, "delete", {"cron_id": as_uuid(cron_id)})
        await self.store.delete(cron_id, where=flt)

    # -- search, count ------------------------------------------------------------------
    async def _search_filters(self, caller: Caller, query: CronQuery, limit: int,
                              offset: int) -> tuple[Filter | None, Filter | None, Json | None]:
        value: Json = {"assistant_id": as_uuid(query.assistant_id) if query.assistant_id
                       else None,
                       "thread_id": as_uuid(query.thread_id) if query.thread_id else None,
                       "limit": limit, "offset": offset,
                       "metadata": dict(query.metadata or {})}
        flt = await self._allow(caller, "search", value)
        if query.thread_id:
            thread_flt = await self.auth.authorize(
                caller, "threads", "read", {"thread_id": value["thread_id"]})
        else:
            thread_flt = await self.auth.authorize(caller, "threads", "search", {})
        return flt, thread_flt, value.get("metadata") or None

    async def search(self, caller: Caller, query: CronQuery, *, limit: int, offset: int,
                     sort_by: str | None, sort_order: str | None) -> list[Json]:
        """Newest first unless ``sort_by``/``sort_order`` say otherwise."""
        flt, thread_flt, metadata = await self._search_filters(caller, query, limit, offset)
        return await self.store.search(
            assistant_id=query.assistant_id, thread_id=query.thread_id,
            enabled=query.enabled, metadata=metadata, limit=limit, offset=offset,
            sort_by=sort_by or "created_at", sort_order=sort_order or "desc", where=flt,
            thread_where=thread_flt)

    async def count(self, caller: Caller, query: CronQuery) -> int:
        flt, thread_flt, metadata = await self._search_filters(caller, query, 0, 0)
        return await self.store.count(
            assistant_id=query.assistant_id, thread_id=query.thread_id,
            enabled=query.enabled, metadata=metadata, where=flt, thread_where=thread_flt)


def _patcher(changes: CronChanges, metadata: Json | None,
             end_time: dt.datetime | None | msgspec.UnsetType, now: dt.datetime
             ) -> Callable[[Json], Json]:
    """The pure row -> columns function the store runs on the locked row."""

    def patch(row: Json) -> Json:
        out: Json = {}
        for key in ("schedule", "timezone", "enabled", "on_run_completed"):
            if getattr(changes, key) is not None:
                out[key] = getattr(changes, key)
        if metadata is not None:
            out["metadata"] = metadata  # replaced (docs/crons.md); the handler's stamp kept
        if end_time is not msgspec.UNSET:
            out["end_time"] = end_time
        if changes.template:
            out["payload"] = {**(row["payload"] or {}), **changes.template}
        schedule = crons.parse(str(out.get("schedule", row["schedule"])),
                               out.get("timezone", row["timezone"]))
        if "schedule" in out:
            out["schedule"] = schedule.expr
        turned_on = out.get("enabled") is True and not row["enabled"]
        # A re-enabled cron resumes from now: the occurrences it slept through never fire.
        if turned_on or {"schedule", "timezone", "end_time"} & set(out):
            out["next_run_date"] = crons.next_fire(
                schedule, now, out.get("end_time", row["end_time"]))
        return out

    return patch
