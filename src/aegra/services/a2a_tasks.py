"""A2A tasks over runs: finding a task's run and state, and ending a task that waits
for input (spec: /tmp/oracle ``api/a2a.py``, platform 0.16.7).

A task is named by its first run (``context:run``); the runs that continue it (a reply
resuming an interrupt, the marker of a cancel) carry that id in ``metadata.a2a.task_id``,
so the task's state is its newest run's. Every read is the caller's: a task on a thread
the caller may not see is "task not found".
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import trio

from aegra.domain import a2a
from aegra.domain import a2a_messages as msgs
from aegra.domain.a2a import RpcError
from aegra.domain.auth import Caller
from aegra.domain.errors import Invalid, NotFound
from aegra.services.container import Services

RUN_SCAN_LIMIT = 1000  # the platform's bound on the runs of a context it scans
CANCEL_SETTLE_S = 10.0  # a cancelled run settles in well under this; the answer waits
MARKER_DELAY_S = 3600.0  # the cancel marker must never start before it is cancelled


@dataclass(frozen=True)
class Task:
    task_id: str
    context_id: str
    run: dict[str, Any]  # the task's newest run
    state: str


def not_found(task_id: str) -> RpcError:
    return RpcError(a2a.TASK_NOT_FOUND, f"Task not found: {task_id}")


def stored_task_id(run: dict[str, Any]) -> str | None:
    """The task a continuing run belongs to (None for a task's first run)."""
    metadata = run.get("metadata")
    found = metadata.get("a2a") if isinstance(metadata, dict) else None
    value = found.get("task_id") if isinstance(found, dict) else None
    return value if isinstance(value, str) and value else None


async def resolve(s: Services, caller: Caller, aid: str, tid: str, ctx: object) -> Task:
    """The task ``tid`` of assistant ``aid`` as the caller sees it; RpcError otherwise.
    Its state is its newest run's, except that a successful run which is its thread's
    newest and left the thread interrupted is waiting for input."""
    if ctx is not None and not isinstance(ctx, str):
        raise RpcError(a2a.INVALID_PARAMS, "Task id and contextId must be strings")
    parts = a2a.split_task_id(tid)
    if parts is None or (ctx and ctx != parts[0]):
        raise not_found(tid)
    try:
        uuid.UUID(parts[0]), uuid.UUID(parts[1])
        anchor = dict(await s.runs.get_run(caller, parts[0], parts[1]))
    except (ValueError, NotFound, Invalid):
        raise not_found(tid) from None
    # A continuing run's own composite id does not name a task.
    if str(anchor["assistant_id"]) != aid or stored_task_id(anchor) not in (None, tid):
        raise not_found(tid)
    runs = await s.runs.list_runs(caller, parts[0], limit=RUN_SCAN_LIMIT, offset=0,
                                  status=None)  # newest first
    latest = next((dict(r) for r in runs if str(r["assistant_id"]) == aid and (
        str(r["run_id"]) == parts[1] or stored_task_id(r) == tid)), anchor)
    state = a2a.run_state(latest["status"])
    if state == a2a.COMPLETED and runs and str(runs[0]["run_id"]) == str(latest["run_id"]):
        thread = await s.threads.get(caller, parts[0])
        if thread.get("status") == "interrupted":
            state = a2a.INPUT_REQUIRED
    return Task(tid, parts[0], latest, state)


async def continuation(s: Services, caller: Caller, aid: str, message: dict[str, Any],
                       run_input: dict[str, Any]
                       ) -> tuple[str | None, dict[str, Any] | None, dict[str, Any]]:
    """What a message naming a task (``taskId``) continues, as on the platform: the
    task's context, the ``Command(resume=...)`` when it waits for input, and the input
    left. A finished task takes no more messages; a ``resume`` data part needs a task
    that waits for input. A message naming no task: (None, None, input)."""
    tid = message.get("taskId")
    explicit = msgs.data_resume(message)[0]
    if tid is None:
        if explicit:
            raise RpcError(a2a.INVALID_PARAMS,
                           "contextId and taskId are required when resuming a task")
        return None, None, run_input
    task = await resolve(s, caller, aid, tid, message.get("contextId"))
    if task.state in a2a.TERMINAL:
        raise RpcError(a2a.UNSUPPORTED_OPERATION,
                       "A terminal task cannot accept another message")
    if task.state == a2a.INPUT_REQUIRED:
        command, run_input = msgs.resume(message, run_input)
        return task.context_id, command, run_input
    if explicit:
        raise RpcError(a2a.INVALID_PARAMS, "Task is not awaiting input")
    return task.context_id, None, run_input


async def end_input_required(s: Services, caller: Caller, aid: str, task: Task,
                             headers: list[tuple[str, str]]) -> None:
    """Cancel a task that waits for input, as the platform does: a marker run of the
    task (held back so it never starts) is cancelled, which makes the task canceled,
    and the thread's pending interrupt is closed by an update as ``__end__``. If that
    fails the marker goes again, so the task is left as it was."""
    marker = await s.runs.create(caller, {
        "assistant_id": aid, "after_seconds": MARKER_DELAY_S,
        "metadata": {"a2a": {"task_id": task.task_id}}},
        thread_id=task.context_id, headers=headers)
    rid = str(marker["run_id"])
    try:
        await s.runs.cancel_run(caller, task.context_id, rid, "interrupt")
        with trio.move_on_after(CANCEL_SETTLE_S):
            await s.runs.result(rid, None)
        await s.threads.update_state(caller, task.context_id, values=None,
                                     as_node="__end__")
    except BaseException:
        with trio.move_on_after(CANCEL_SETTLE_S, shield=True):
            await s.runs.delete_run(caller, task.context_id, rid)
        raise
