"""In-memory twin of ``PgRuns``: the ``RunStore`` port, plus the worker's claim, fenced
finish and release, over the in-memory thread and assistant tables.

Same contract, kept honest by tests/contract/test_run_store.py: a run is created with
its multitask rules applied against the thread's in-flight runs; a thread made for a run
is tagged with its graph and assistant; only the oldest pending run of a thread may be
claimed, and only while nothing else runs there; finish and release are fenced by owner
and attempt; a cancelled pending run settles at once (``rollback`` deletes it); the
caller's ``where`` filters on the *thread's* metadata and hides a run exactly like a
missing one. (``MemoryRunStore`` in ``runs.py`` is the smaller twin the actor tests drive
on the Trio clock; this one serves the services and the in-process API ring.)

The tables are shared, as PostgreSQL's are: the thread's status and ``active`` set of
``MemoryThreads``, and ``MemoryAssistants.runs`` (what assistant deletion cancels), are
kept as the SQL keeps them. Cascades are by identity: a run belongs to the thread row
and the assistant row it was created with, so once either is deleted the run is gone
too, even if a new row later takes the same id (PostgreSQL's ``ON DELETE CASCADE``).
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import msgspec

from aegra.adapters.memory.assistants import MemoryAssistants
from aegra.adapters.memory.threads import MemoryThreads
from aegra.domain.assistants import is_system
from aegra.domain.auth import Filter, matches
from aegra.domain.errors import Conflict, NotFound
from aegra.domain.ports import AssistantLookup, ClaimedRun, Outcome
from aegra.domain.run_rows import Cancelled, Created, NewRun, run_row
from aegra.domain.runs import INFLIGHT, new_run_id, thread_status_after

Json = dict[str, Any]
# What a run row reads as (``RUN_COLUMNS`` of the PostgreSQL adapter).
COLUMNS = ("run_id", "thread_id", "assistant_id", "status", "multitask_strategy",
           "metadata", "execution_params", "output", "error", "user_id", "stateless",
           "created_at", "updated_at", "attempt", "cron_id")
_ASSISTANT_FIELDS = ("assistant_id", "graph_id", "config", "context", "version",
                     "updated_at")


class _Clock:
    """Strictly increasing UTC timestamps: rows made one after another never tie, as
    separate PostgreSQL transactions practically never do."""

    def __init__(self) -> None:
        self.last = dt.datetime.now(dt.UTC)

    def now(self) -> dt.datetime:
        now = dt.datetime.now(dt.UTC)
        self.last = now if now > self.last else self.last + dt.timedelta(microseconds=1)
        return self.last


class _Run:
    """One run row, the rows it belongs to, and its claim."""

    __slots__ = ("row", "thread", "assistant", "available_at", "claimed_by",
                 "cancel_action")

    def __init__(self, row: Json, thread: Json, assistant: Json,
                 available_at: dt.datetime) -> None:
        self.row = row
        self.thread = thread  # MemoryThreads' row dict (identity: the cascade)
        self.assistant = assistant  # MemoryAssistants' row dict
        self.available_at = available_at
        self.claimed_by: str | None = None
        self.cancel_action: str | None = None


def _out(row: Json) -> Json:
    return {k: copy.deepcopy(row[k]) for k in COLUMNS}


def _order(run: _Run) -> tuple[dt.datetime, str]:
    return run.row["created_at"], run.row["run_id"]


class MemoryRuns:
    def __init__(self, threads: MemoryThreads, assistants: MemoryAssistants) -> None:
        self.threads = threads
        self.assistants = assistants
        self.clock = _Clock()
        self._runs: dict[str, _Run] = {}

    # -- the shared tables ----------------------------------------------------------------
    def _live(self, run: _Run) -> bool:
        row = run.row
        return (self.threads.rows.get(row["thread_id"]) is run.thread
                and self.assistants.rows.get(row["assistant_id"]) is run.assistant)

    def _all(self) -> list[_Run]:
        """Every run still there, oldest first (cascaded ones are dropped on the way)."""
        for run_id in [r for r, run in self._runs.items() if not self._live(run)]:
            del self._runs[run_id]
            self.assistants.runs.pop(run_id, None)
        return sorted(self._runs.values(), key=_order)

    def _of_thread(self, thread_id: str) -> list[_Run]:
        return [r for r in self._all() if r.row["thread_id"] == thread_id]

    def _visible(self, run: _Run, where: Filter | None) -> bool:
        return where is None or matches(where, run.thread["metadata"])

    def _find(self, run_id: str, thread_id: str | None, where: Filter | None) -> _Run | None:
        run = self._runs.get(run_id)
        if run is None or not self._live(run) or not self._visible(run, where):
            return None
        if thread_id and run.row["thread_id"] != thread_id:
            return None
        return run

    def _set_status(self, run: _Run, status: str) -> None:
        run.row["status"] = status
        run.row["updated_at"] = self.clock.now()
        self._sync(run.row["thread_id"])
        self.assistants.runs[run.row["run_id"]] = (run.row["assistant_id"], status)

    def _sync(self, thread_id: str) -> None:
        """``MemoryThreads.active``: the thread has a pending or running run."""
        if any(r.row["status"] in INFLIGHT for r in self._of_thread(thread_id)):
            self.threads.active.add(thread_id)
        else:
            self.threads.active.discard(thread_id)

    def _remove(self, run: _Run) -> None:
        del self._runs[run.row["run_id"]]
        self.assistants.runs.pop(run.row["run_id"], None)
        self._sync(run.row["thread_id"])

    def _free_thread(self, thread_id: str) -> None:
        """A busy thread with nothing left in flight is idle again."""
        thread = self.threads.rows.get(thread_id)
        if (thread is not None and thread["status"] == "busy"
                and thread_id not in self.threads.active):
            thread["status"] = "idle"
            thread["updated_at"] = self.clock.now()

    def _assistant_row(self, lookup: AssistantLookup) -> Json:
        row = self.assistants.rows.get(lookup.assistant_id)
        if row is None or row["graph_id"] not in lookup.graph_ids:
            raise lookup.missing
        return row

    # -- creation -------------------------------------------------------------------------
    async def create(self, new: NewRun, lookup: AssistantLookup | None = None) -> Created:
        """Create a run: multitask rules against the thread's in-flight runs; a missing
        thread is made when ``if_not_exists="create"`` or the run is stateless."""
        new = msgspec.structs.replace(new, run_id=new.run_id or new_run_id())
        if lookup is not None:
            found = self._assistant_row(lookup)
            new = msgspec.structs.replace(
                new, assistant_id=found["assistant_id"], graph_id=found["graph_id"],
                params=lookup.build({k: copy.deepcopy(found[k]) for k in _ASSISTANT_FIELDS}))
        assistant = self.assistants.rows.get(new.assistant_id)
        if assistant is None:  # PostgreSQL: a foreign-key violation
            raise NotFound(f"Assistant '{new.assistant_id}' not found")
        r = run_row(new)
        cancelled = Cancelled()
        thread = self.threads.rows.get(r.thread_id)
        if thread is None:
            if not (new.stateless or new.if_not_exists == "create"):
                raise NotFound(f"Thread {r.thread_id} not found")
            await self.threads.create(r.thread_id, r.thread_metadata, None, "raise")
            thread = self.threads.rows[r.thread_id]
            thread["user_id"] = r.user_id
        else:
            inflight = [x.row["run_id"] for x in self._of_thread(r.thread_id)
                        if x.row["status"] in INFLIGHT]
            if inflight and new.multitask_strategy == "reject":
                raise Conflict(
                    f"Thread {r.thread_id} is already running a task. Wait for it to finish "
                    "or choose a different multitask strategy.")
            if inflight and new.multitask_strategy in ("interrupt", "rollback"):
                cancelled = self._cancel(inflight, new.multitask_strategy)
        now = self.clock.now()
        thread["status"] = "busy"
        thread["updated_at"] = now
        thread["metadata"] = {**copy.deepcopy(r.thread_metadata), **thread["metadata"]}
        row: Json = {
            "run_id": r.run_id, "thread_id": r.thread_id, "assistant_id": r.assistant_id,
            "status": "pending", "multitask_strategy": r.multitask_strategy,
            "metadata": copy.deepcopy(r.metadata),
            "execution_params": copy.deepcopy(r.execution_params), "output": None,
            "error": None, "user_id": r.user_id, "stateless": r.stateless,
            "created_at": now, "updated_at": now, "attempt": 0, "cron_id": r.cron_id}
        run = _Run(row, thread, assistant, now + dt.timedelta(seconds=r.after_s))
        self._runs[r.run_id] = run
        self.assistants.runs[r.run_id] = (r.assistant_id, "pending")
        self.threads.active.add(r.thread_id)
        return Created(run=_out(row), cancelled=cancelled)

    async def create_as(self, new: NewRun, lookup: AssistantLookup, *,
                        thread_filter: Filter | None = None,
                        assistant_filter: Filter | None = None,
                        thread_metadata: dict[str, Any] | None = None) -> Created:
        """``create`` for an authorized caller: an existing thread must pass
        ``thread_filter`` and a user assistant ``assistant_filter`` (NotFound otherwise);
        a thread made for the run gets ``thread_metadata`` over its own."""
        found = self.assistants.rows.get(lookup.assistant_id)
        if (assistant_filter is not None and found is not None
                and found["graph_id"] in lookup.graph_ids
                and not is_system(found["metadata"])
                and not matches(assistant_filter, found["metadata"])):
            raise lookup.missing
        fresh = new.thread_id is None
        if new.thread_id is not None:
            thread = self.threads.rows.get(new.thread_id)
            if thread is not None and not matches(thread_filter, thread["metadata"]):
                raise NotFound(f"Thread {new.thread_id} not found")
            fresh = thread is None
        created = await self.create(new, lookup)
        if fresh and thread_metadata:
            made = self.threads.rows[created.run["thread_id"]]
            made["metadata"] = {**made["metadata"], **copy.deepcopy(thread_metadata)}
        return created

    async def assistant(self, lookup: AssistantLookup) -> dict[str, Any]:
        found = self._assistant_row(lookup)
        return {k: copy.deepcopy(found[k]) for k in (*_ASSISTANT_FIELDS, "metadata")}

    # -- a caller's reads and deletes ----------------------------------------------------
    async def get(self, run_id: str, thread_id: str | None = None, *,
                  where: Filter | None = None) -> dict[str, Any]:
        found = await self.find(run_id, thread_id, where=where)
        if found is None:
            raise NotFound(f"Run {run_id} not found")
        return found

    async def find(self, run_id: str, thread_id: str | None = None, *,
                   where: Filter | None = None) -> dict[str, Any] | None:
        run = self._find(run_id, thread_id, where)
        return None if run is None else _out(run.row)

    async def inflight(self, *, thread_id: str | None = None, run_ids: list[str] | None = None,
                       status: str | None = None, where: Filter | None = None) -> list[str]:
        return [r.row["run_id"] for r in self._all()
                if r.row["status"] in INFLIGHT
                and (thread_id is None or r.row["thread_id"] == thread_id)
                and (run_ids is None or r.row["run_id"] in run_ids)
                and (status is None or r.row["status"] == status)
                and self._visible(r, where)]

    async def delete(self, thread_id: str, run_id: str, *, where: Filter | None = None
                     ) -> None:
        run = self._find(run_id, thread_id, where)
        if run is None:
            raise NotFound(f"Run {run_id} not found")
        self._remove(run)
        self._free_thread(thread_id)

    async def thread_visible(self, thread_id: str, *, where: Filter | None = None) -> bool:
        thread = self.threads.rows.get(thread_id)
        return thread is not None and matches(where, thread["metadata"])

    async def stream_start(self, thread_id: str, *, where: Filter | None = None
                           ) -> dt.datetime:
        if not await self.thread_visible(thread_id, where=where):
            raise NotFound(f"Thread {thread_id} not found")
        return self.clock.now()

    async def next_runs(self, thread_id: str, after_created: dt.datetime | None,
                        since: dt.datetime) -> list[dict[str, Any]]:
        return [{"run_id": r.row["run_id"], "created_at": r.row["created_at"],
                 "status": r.row["status"]}
                for r in self._of_thread(thread_id)
                if (r.row["status"] in INFLIGHT or r.row["created_at"] >= since)
                and (after_created is None or r.row["created_at"] > after_created)]

    # -- cancellation ---------------------------------------------------------------------
    def _cancel(self, run_ids: list[str], action: str) -> Cancelled:
        """Pending runs end (or, for rollback, vanish) now; running ones get a request."""
        settled: list[str] = []
        running: list[str] = []
        for run_id in run_ids:
            run = self._runs.get(run_id)
            if run is None or not self._live(run):
                continue
            if run.row["status"] == "pending":
                settled.append(run_id)
                if action == "rollback":
                    self._remove(run)
                else:
                    run.cancel_action = "interrupt"
                    self._set_status(run, "interrupted")
            elif run.row["status"] == "running":
                running.append(run_id)
                run.cancel_action = action
        return Cancelled(running=running, settled=settled, action=action)

    async def request_cancel(self, run_ids: list[str], action: str) -> Cancelled:
        threads = {r.row["thread_id"] for r in self._runs.values()
                   if r.row["run_id"] in run_ids}
        cancelled = self._cancel(run_ids, action)
        for thread_id in sorted(threads):
            self._free_thread(thread_id)
        return cancelled

    async def refresh_thread(self, thread_id: str, values: object, interrupts: dict[str, Any],
                             paused: bool) -> None:
        thread = self.threads.rows.get(thread_id)
        if thread is None or thread["status"] == "busy":
            return
        now = self.clock.now()
        thread.update({"values": copy.deepcopy(values),
                       "interrupts": copy.deepcopy(interrupts), "updated_at": now,
                       "state_updated_at": now})
        if thread["status"] == "idle" and paused:
            thread["status"] = "interrupted"

    async def next_pending(self, thread_id: str) -> str | None:
        pending = [r for r in self._of_thread(thread_id) if r.row["status"] == "pending"]
        return pending[0].row["run_id"] if pending else None

    def forget_cron(self, cron_id: str) -> None:
        """A deleted cron's runs stay, without it (``runs.cron_id ON DELETE SET NULL``)."""
        for run in self._runs.values():
            if run.row["cron_id"] == cron_id:
                run.row["cron_id"] = None

    async def pending_ids(self, limit: int = 1000) -> list[str]:
        pending = sorted((r for r in self._all() if r.row["status"] == "pending"),
                         key=lambda r: (r.available_at, r.row["created_at"]))
        return [r.row["run_id"] for r in pending[:limit]]

    # -- workers --------------------------------------------------------------------------
    async def claim(self, run_id: str, owner: str, lease_s: float) -> ClaimedRun | None:
        """Only the thread's oldest pending run, once available, while nothing runs."""
        run = self._runs.get(run_id)
        if (run is None or not self._live(run) or run.row["status"] != "pending"
                or run.claimed_by is not None or run.available_at > self.clock.now()):
            return None
        siblings = self._of_thread(run.row["thread_id"])
        if any(r.row["status"] == "running" for r in siblings):
            return None
        if next(r for r in siblings if r.row["status"] == "pending") is not run:
            return None
        run.claimed_by = owner
        run.row["attempt"] += 1
        self._set_status(run, "running")
        run.thread["status"] = "busy"
        run.thread["updated_at"] = run.row["updated_at"]
        row = run.row
        return ClaimedRun(
            run_id=run_id, thread_id=row["thread_id"], assistant_id=row["assistant_id"],
            attempt=row["attempt"], params=copy.deepcopy(row["execution_params"]),
            metadata=copy.deepcopy(row["metadata"]), stateless=row["stateless"],
            user_id=row["user_id"])

    def _owned(self, claimed: ClaimedRun, owner: str) -> _Run | None:
        run = self._runs.get(claimed.run_id)
        if (run is None or not self._live(run) or run.claimed_by != owner
                or run.row["attempt"] != claimed.attempt):
            return None
        return run

    async def finish(self, claimed: ClaimedRun, owner: str, outcome: Outcome,
                     thread_values: object, thread_interrupts: dict[str, Any]
                     ) -> tuple[bool, str | None]:
        """Fenced by owner and attempt: ``(written, the thread's next pending run)``."""
        run = self._owned(claimed, owner)
        if run is None:
            return False, None
        thread = run.thread
        errored = outcome.status in ("error", "timeout")
        if outcome.cancel_action == "rollback":
            self._remove(run)
            interrupted = False
        else:
            run.claimed_by = None
            run.row.update({"output": copy.deepcopy(outcome.values),
                            "error": copy.deepcopy(outcome.error)})
            self._set_status(run, outcome.status)
            interrupted = outcome.interrupted and outcome.status == "success"
        next_run = await self.next_pending(claimed.thread_id)
        now = self.clock.now()
        thread["status"] = thread_status_after(errored=errored, interrupted=interrupted,
                                               others_pending=next_run is not None)
        if thread_values is not None:
            thread["values"] = copy.deepcopy(thread_values)
            thread["state_updated_at"] = now
        thread.update({"interrupts": copy.deepcopy(thread_interrupts),
                       "error": copy.deepcopy(outcome.error), "updated_at": now})
        return True, next_run

    async def release(self, claimed: ClaimedRun, owner: str) -> bool:
        """Hand a claimed run back (drain): pending again, no retry spent."""
        run = self._owned(claimed, owner)
        if run is None:
            return False
        run.claimed_by = None
        self._set_status(run, "pending")
        return True

    # Newest first. Last: below it, ``list`` in an annotation would name this method.
    async def list(self, thread_id: str, *, limit: int, offset: int, status: str | None,
                   where: Filter | None = None) -> list[dict[str, Any]]:
        found = [r for r in reversed(self._of_thread(thread_id))
                 if (status is None or r.row["status"] == status) and self._visible(r, where)]
        return [_out(r.row) for r in found[offset:offset + limit]]
