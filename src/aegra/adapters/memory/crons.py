"""In-memory twin of ``PgCrons`` (the ``CronStore`` port), over ``MemoryRuns`` and the
thread and assistant tables it shares.

Same contract, kept honest by tests/contract/test_cron_store.py: a cron and its first
run are made together or not at all; ``max_per_user`` counts the owner's crons; ``where``
hides a cron exactly like a missing one and ``thread_where`` a thread-bound cron whose
thread the caller may not see; search orders as PostgreSQL does (NULLs are the largest
value, the id breaks ties in the same direction); ``fire_due`` claims the due crons
oldest occurrence first, makes the runs ``plan`` decides and advances every claimed cron.
Cascades are by identity, as in ``MemoryRuns``: a cron goes with its assistant row and
its thread row; a deleted cron's runs stay, without their ``cron_id``.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from typing import Any

import msgspec

from aegra.adapters.memory.assistants import contains
from aegra.adapters.memory.run_store import MemoryRuns
from aegra.domain.assistants import canonical_id, not_found
from aegra.domain.auth import Filter, matches
from aegra.domain.crons import COLUMNS, SORTABLE, Fired, Firing, NewCron
from aegra.domain.errors import DomainError, NotFound, TooMany
from aegra.domain.run_rows import Created, NewRun

Json = dict[str, Any]
PATCHABLE = ("schedule", "timezone", "end_time", "enabled", "on_run_completed", "payload",
             "metadata", "next_run_date")


class _Cron:
    __slots__ = ("row", "assistant", "thread")

    def __init__(self, row: Json, assistant: Json, thread: Json | None) -> None:
        self.row = row  # COLUMNS and last_run_date
        self.assistant = assistant  # the assistant row it was made with (cascade)
        self.thread = thread  # the thread row, for a thread-bound cron


def _out(row: Json) -> Json:
    return {k: copy.deepcopy(row[k]) for k in COLUMNS}


class MemoryCrons:
    """``graph_ids``: the graphs this server serves (an assistant of another graph is not
    found; a graph id names its default assistant)."""

    def __init__(self, runs: MemoryRuns, graph_ids: list[str] | None = None) -> None:
        self.runs = runs
        self.graph_ids = graph_ids
        self._crons: dict[str, _Cron] = {}

    def _canonical(self, value: str) -> str:
        return canonical_id(self.graph_ids or (), value)

    def _live(self, cron: _Cron) -> bool:
        row = cron.row
        return (self.runs.assistants.rows.get(row["assistant_id"]) is cron.assistant
                and (row["thread_id"] is None
                     or self.runs.threads.rows.get(row["thread_id"]) is cron.thread))

    def _all(self) -> list[_Cron]:
        for cron_id in [c for c, cron in self._crons.items() if not self._live(cron)]:
            del self._crons[cron_id]
        return list(self._crons.values())

    def _find(self, cron_id: str, where: Filter | None) -> _Cron:
        cron = self._crons.get(cron_id)
        if cron is None or not self._live(cron) or not matches(where, cron.row["metadata"]):
            raise NotFound(f"Cron '{cron_id}' not found")
        return cron

    async def assistant(self, value: str) -> dict[str, Any]:
        row = self.runs.assistants.rows.get(self._canonical(value))
        if row is None or (self.graph_ids is not None and row["graph_id"] not in self.graph_ids):
            raise not_found(value)
        return {k: copy.deepcopy(row[k])
                for k in ("assistant_id", "graph_id", "config", "context", "metadata")}

    async def create(self, new: NewCron, first_run: NewRun | None, *, max_per_user: int,
                     assistant_where: Filter | None = None,
                     thread_where: Filter | None = None
                     ) -> tuple[dict[str, Any], Created | None]:
        if max_per_user > 0:
            owned = sum(1 for c in self._all() if c.row["user_id"] == new.user_id)
            if owned >= max_per_user:
                raise TooMany(f"Cron limit reached: a user may own at most {max_per_user} "
                              "crons (CRON_MAX_PER_USER)")
        assistant = self.runs.assistants.rows.get(new.assistant_id)
        if assistant is None or (assistant_where
                                 and not matches(assistant_where, assistant["metadata"])):
            raise not_found(new.assistant_id)
        thread = None
        if new.thread_id is not None:
            thread = self.runs.threads.rows.get(new.thread_id)
            if thread is None or not matches(thread_where, thread["metadata"]):
                raise NotFound(f"Thread with ID '{new.thread_id}' not found")
        # The run first: when it is refused (a busy thread under ``reject``) no cron is
        # left behind, as the transaction rolls back.
        created = await self.runs.create(first_run) if first_run is not None else None
        now = self.runs.clock.now()
        row = {**copy.deepcopy(msgspec.structs.asdict(new)), "created_at": now,
               "updated_at": now, "last_run_date": None}
        self._crons[new.cron_id] = _Cron(row, assistant, thread)
        return _out(row), created

    async def get(self, cron_id: str, *, where: Filter | None = None) -> dict[str, Any]:
        return _out(self._find(cron_id, where).row)

    async def update(self, cron_id: str, patch: Callable[[dict[str, Any]], dict[str, Any]],
                     *, where: Filter | None = None) -> dict[str, Any]:
        cron = self._find(cron_id, where)
        changes = {k: v for k, v in patch(_out(cron.row)).items() if k in PATCHABLE}
        cron.row.update(copy.deepcopy(changes))
        cron.row["updated_at"] = self.runs.clock.now()
        return _out(cron.row)

    async def delete(self, cron_id: str, *, where: Filter | None = None) -> None:
        self._find(cron_id, where)
        del self._crons[cron_id]
        self.runs.forget_cron(cron_id)

    def _matching(self, assistant_id: str | None, thread_id: str | None,
                  enabled: bool | None, metadata: dict[str, Any] | None,
                  where: Filter | None, thread_where: Filter | None) -> list[_Cron]:
        aid = self._canonical(assistant_id) if assistant_id else None
        return [c for c in self._all()
                if (aid is None or c.row["assistant_id"] == aid)
                and (thread_id is None or c.row["thread_id"] == thread_id)
                and (enabled is None or c.row["enabled"] == enabled)
                and (not metadata or contains(c.row["metadata"], metadata))
                and matches(where, c.row["metadata"])
                and (not thread_where or c.thread is None
                     or matches(thread_where, c.thread["metadata"]))]

    async def search(self, *, assistant_id: str | None, thread_id: str | None,
                     enabled: bool | None, metadata: dict[str, Any] | None, limit: int,
                     offset: int, sort_by: str, sort_order: str,
                     where: Filter | None = None, thread_where: Filter | None = None
                     ) -> list[dict[str, Any]]:
        if sort_by not in SORTABLE:
            raise ValueError(sort_by)
        found = self._matching(assistant_id, thread_id, enabled, metadata, where,
                               thread_where)

        # PostgreSQL's default: NULL sorts as the largest value (last ascending, first
        # descending); the id breaks ties in the same direction.
        def key(cron: _Cron) -> tuple[bool, Any, str]:
            value = cron.row[sort_by]
            return value is None, value if value is not None else 0, cron.row["cron_id"]
        found.sort(key=key, reverse=sort_order != "asc")
        return [_out(c.row) for c in found[offset:offset + limit]]

    async def count(self, *, assistant_id: str | None, thread_id: str | None,
                    enabled: bool | None, metadata: dict[str, Any] | None,
                    where: Filter | None = None, thread_where: Filter | None = None) -> int:
        return len(self._matching(assistant_id, thread_id, enabled, metadata, where,
                                  thread_where))

    async def fire_due(self, plan: Callable[[dict[str, Any]], Firing], limit: int) -> Fired:
        """Claim up to ``limit`` due crons (oldest occurrence first), make the runs
        ``plan`` decides (thread-bound ones under their thread's rules; stateless ones
        after) and advance every claimed cron."""
        now = self.runs.clock.now()
        due = sorted((c for c in self._all() if c.row["enabled"]
                      and c.row["next_run_date"] is not None
                      and c.row["next_run_date"] <= now),
                     key=lambda c: (c.row["next_run_date"], c.row["cron_id"]))[:limit]
        fired = Fired(claimed=len(due))
        stateless: list[NewRun] = []
        for cron in due:
            a = cron.assistant
            row = {**_out(cron.row), "graph_id": a["graph_id"],
                   "assistant_config": copy.deepcopy(a["config"]),
                   "assistant_context": copy.deepcopy(a["context"]), "db_now": now}
            cron_id = cron.row["cron_id"]
            firing = plan(row)
            if firing.run is None:
                fired.skipped.append((cron_id, firing.why or "nothing to fire"))
            else:
                if firing.why:
                    fired.notes.append((cron_id, firing.why))
                if firing.run.thread_id is None:
                    stateless.append(firing.run)
                else:
                    try:
                        fired.created.append(await self.runs.create(firing.run))
                    except DomainError as exc:
                        fired.skipped.append((cron_id, exc.message))
            cron.row["next_run_date"] = firing.next_run_date
            if firing.run is not None:
                cron.row["last_run_date"] = firing.occurrence
            if firing.next_run_date is not None and firing.next_run_date <= now:
                fired.behind = True
        for new in stateless:
            fired.created.append(await self.runs.create(
                msgspec.structs.replace(new, thread_id=None)))
        upcoming = [c.row["next_run_date"] for c in self._all()
                    if c.row["enabled"] and c.row["next_run_date"] is not None]
        if upcoming:
            fired.next_due_s = (min(upcoming) - dt.datetime.now(dt.UTC)).total_seconds()
        return fired
