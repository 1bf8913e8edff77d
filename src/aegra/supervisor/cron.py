"""Cron ticker actor (every instance): fires due crons, each occurrence exactly once.

Owns nothing but its schedule. Each pass, in ONE PostgreSQL transaction, it claims up to
``batch`` due, enabled crons (``FOR UPDATE SKIP LOCKED``), creates each one's run (the same
insert the run endpoints use) and advances ``next_run_date``; only after the commit are
the run ids queued. A crash before the commit leaves nothing behind and the occurrence is
claimed again; a crash after it leaves a pending run whose lost queue message the
reaper's stuck-pending rule recovers. Tickers on several instances skip each other's
locked rows, and a row advanced meanwhile no longer matches, so no occurrence makes two
runs (DESIGN §5, stronger than the at-least-once of the product document).

Catch-up policy (``domain.crons.advance``): an occurrence at most ``grace_s`` late (a slow
tick, a short restart) fires, and so does every following one, each once, back to back
until the cron is current. An occurrence later than that was *missed* (every instance was
down): it fires once at startup, standing for all the occurrences missed meanwhile, and
the schedule resumes from now. An occurrence after ``end_time`` does not fire and ends the
schedule (``next_run_date`` null). A firing that cannot make its run (its thread is busy
and the strategy is ``reject``) is skipped and logged; the schedule moves on.

Between passes it sleeps until the earliest next occurrence, at most ``interval_s``
(``cron.tick_interval_s``), so firing lateness is not bounded below by the interval.
Calls ``started()`` after its first pass (missed occurrences are fired before the
instance reports ready). Makes no runs while the instance drains. Cancelled: a pass in
flight is abandoned; its transaction never committed, so another instance (or the next
start) fires those occurrences. Restartable.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, NoReturn

import trio

from aegra import logs
from aegra.adapters.postgres.crons import Fired, Firing, PgCrons
from aegra.adapters.postgres.runs import Created, NewRun
from aegra.domain import crons
from aegra.domain.errors import Invalid
from aegra.services.runs import build_params
from aegra.supervisor.policy import ActorSpec

log = logs.get_logger("aegra.cron")
DEFAULT_GRACE_S = 10.0
MIN_SLEEP_S = 0.005  # wall clocks of instance and database differ a little; never spin


@dataclass
class TickerDeps:
    crons: Any  # aegra.adapters.postgres.crons.PgCrons
    queue: Any  # JobQueue
    settle: Callable[[Any], Awaitable[None]]  # cancels what a run's multitask rule displaced
    intake_stopped: trio.Event
    interval_s: float = 1.0
    grace_s: float = DEFAULT_GRACE_S
    batch: int = 100


def cron_run(cron: dict[str, Any], assistant: dict[str, Any],
             occurrence: dt.datetime | None) -> NewRun:
    """The run one firing makes: the cron's payload, as its owner, never its metadata.

    ``occurrence`` is the scheduled instant (None for the first run made at creation); it
    is kept in the execution params, which is how tests and the benchmark tie runs to
    occurrences.
    """
    payload = dict(cron.get("payload") or {})
    payload.pop("metadata", None)  # seed 001: cron metadata is not copied onto runs
    threaded = cron["thread_id"] is not None
    body = {**payload, "assistant_id": cron["assistant_id"],
            "on_completion": cron.get("on_run_completed") or "delete"}
    params = build_params(body, assistant, threaded)
    params["cron"] = {"cron_id": cron["cron_id"],
                      "scheduled_at": occurrence.isoformat() if occurrence else None}
    return NewRun(
        thread_id=cron["thread_id"], assistant_id=cron["assistant_id"],
        graph_id=assistant["graph_id"], params=params, metadata={},
        multitask_strategy=payload.get("multitask_strategy") or "reject",
        user_id=cron.get("user_id"), stateless=not threaded, cron_id=cron["cron_id"])


def plan(row: dict[str, Any], *, grace_s: float) -> Firing:
    """Pure: the run and the next date for one claimed cron (runs inside the claim)."""
    occurrence, now, end = row["next_run_date"], row["db_now"], row["end_time"]
    try:
        schedule = crons.parse(row["schedule"], row["timezone"])
    except Invalid as exc:
        if exc.field != "timezone":
            log.error("cron.bad_schedule", cron_id=row["cron_id"], error=exc.message)
            return Firing(run=None, next_run_date=None, occurrence=occurrence)
        # A zone the installed tzdata no longer knows: keep firing, in UTC.
        log.warning("cron.bad_timezone", cron_id=row["cron_id"], timezone=row["timezone"])
        schedule = crons.parse(row["schedule"], None)
    if end is not None and occurrence > end:
        return Firing(run=None, next_run_date=None, occurrence=occurrence)
    following = crons.advance(schedule, occurrence, now, end_time=end, grace_s=grace_s)
    assistant = {"assistant_id": row["assistant_id"], "graph_id": row["graph_id"],
                 "config": row["assistant_config"], "context": row["assistant_context"]}
    return Firing(run=cron_run(row, assistant, occurrence), next_run_date=following,
                  occurrence=occurrence)


async def after_commit(queue: Any, settle: Callable[[Any], Awaitable[None]],
                       created: Created) -> None:
    """Queue a committed run; cancel what its multitask strategy displaced."""
    await queue.put(created.run["run_id"])
    if created.cancelled.running or created.cancelled.settled:
        await settle(created.cancelled)


async def tick_once(d: TickerDeps) -> Fired:
    fired: Fired = await d.crons.fire_due(partial(plan, grace_s=d.grace_s), d.batch)
    for created in fired.created:
        await after_commit(d.queue, d.settle, created)
    for cron_id, why in fired.skipped:
        log.warning("cron.occurrence_skipped", cron_id=cron_id, reason=why)
    if fired.created:
        log.info("cron.fired", runs=len(fired.created))
    return fired


async def run_cron_ticker(d: TickerDeps, *,
                          task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                          ) -> NoReturn:
    first = True
    while True:
        wait_s = d.interval_s
        if not d.intake_stopped.is_set():
            fired = await tick_once(d)
            if fired.behind or fired.claimed >= d.batch:
                wait_s = 0.0  # more is due right now
            elif fired.next_due_s is not None:
                wait_s = min(d.interval_s, max(MIN_SLEEP_S, fired.next_due_s))
        if first:
            first = False
            task_status.started()
        await trio.sleep(wait_s)


def ticker_spec(runtime: Any) -> ActorSpec:
    """The ticker of one instance, wired to its run machinery (``RunRuntime``)."""
    cfg = runtime.cfg.cron
    service = runtime.service
    deps = TickerDeps(
        crons=PgCrons(runtime.runs.pg), queue=runtime.queue, settle=service._apply,
        intake_stopped=service.intake_stopped, interval_s=cfg.tick_interval_s,
        grace_s=max(DEFAULT_GRACE_S, 5 * cfg.tick_interval_s))
    return ActorSpec("cron-ticker", partial(run_cron_ticker, deps))
