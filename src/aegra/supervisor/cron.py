"""Cron ticker actor (every instance): fires due crons, each occurrence exactly once.

Owns nothing but its schedule. Each pass, in ONE PostgreSQL transaction, it claims up to
``batch`` due, enabled crons (``FOR UPDATE SKIP LOCKED``), creates each one's run (the row
builder the run endpoints use; the run executes as the cron's owner, spec/auth.md item
14: ``domain.crons.cron_run``) and advances ``next_run_date``; only after the commit are
the run ids queued. A crash before the commit leaves nothing behind and the occurrence is
claimed again; a crash after it leaves a pending run whose lost queue message the
reaper's stuck-pending rule recovers. Tickers on several instances skip each other's
locked rows, and a row advanced meanwhile no longer matches, so no occurrence makes two
runs (stronger than the at-least-once of the product document).

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
instance reports ready). Makes no runs while the instance drains. Cancelled: the pass in
flight completes first (shielded, bounded by ``pass_s``), so what it committed is queued;
past the bound it is abandoned, and the reaper's stuck-pending rule queues whatever it had
committed. Restartable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, NoReturn

import trio

from aegra import logs
from aegra.adapters.postgres.crons import PgCrons
from aegra.domain import crons
from aegra.domain.crons import Fired
from aegra.domain.ports import JobQueue
from aegra.domain.resource_ports import CronStore
from aegra.services.admin import Maintenance
from aegra.services.crons import Settle, after_commit
from aegra.services.runs import build_params
from aegra.supervisor.policy import ActorSpec

if TYPE_CHECKING:  # runtime builds the ticker: a real import would be circular
    from aegra.supervisor.runtime import RunRuntime

log = logs.get_logger("aegra.cron")
DEFAULT_GRACE_S = 10.0
MIN_SLEEP_S = 0.005  # wall clocks of instance and database differ a little; never spin


@dataclass
class TickerDeps:
    crons: CronStore
    queue: JobQueue
    settle: Settle  # cancels what a run's multitask rule displaced
    intake_stopped: trio.Event
    interval_s: float = 1.0
    grace_s: float = DEFAULT_GRACE_S
    batch: int = 100
    pass_s: float = 10.0  # the bound on one shielded pass (claim, commit, queue)
    on_late: Callable[[float], None] = lambda seconds: None  # metrics: each run fired
    maintenance: Maintenance | None = None  # while on, due occurrences are skipped


async def tick_once(d: TickerDeps) -> Fired:
    # Shielded, with a bound: a cancellation arriving while the COMMIT is on the wire
    # reaches Trio as Cancelled although the runs were committed, and they would sit
    # unqueued until the reaper's stuck-pending rule found them. The pass is one short
    # transaction and its queue puts, so a shutdown waits for it at most ``pass_s``.
    fired = Fired()
    late: dict[str, float] = {}  # cron_id -> firing time minus occurrence
    plan: Callable[[dict[str, Any]], crons.Firing] = partial(_plan, d.grace_s, late)
    if d.maintenance is not None and await d.maintenance.on():
        plan = partial(crons.skip, why="maintenance mode")  # skipped, never caught up
    with trio.move_on_after(d.pass_s, shield=True) as bound:
        fired = await d.crons.fire_due(plan, d.batch)
        skipped = {cron_id for cron_id, _ in fired.skipped}
        for cron_id, seconds in late.items():  # committed, and made a run
            if cron_id not in skipped:
                d.on_late(seconds)
        for created in fired.created:
            await after_commit(d.queue, d.settle, created)
    if bound.cancelled_caught:
        log.warning("cron.pass_timed_out", seconds=d.pass_s,
                    hint="the reaper's stuck-pending rule queues what it committed")
    for cron_id, why in fired.skipped:
        log.warning("cron.occurrence_skipped", cron_id=cron_id, reason=why)
    for cron_id, what in fired.notes:
        log.warning("cron.fired_with_workaround", cron_id=cron_id, note=what)
    if fired.created:
        log.info("cron.fired", runs=len(fired.created))
    return fired


def _plan(grace_s: float, late: dict[str, float], row: dict[str, Any]) -> crons.Firing:
    """``crons.plan``, noting how late each firing is (each cron is claimed once a pass)."""
    firing = crons.plan(row, grace_s=grace_s, build=build_params)
    if firing.run is not None:
        late[row["cron_id"]] = (row["db_now"] - firing.occurrence).total_seconds()
    return firing


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


def ticker_spec(runtime: RunRuntime) -> ActorSpec:
    """The ticker of one instance, wired to its run machinery (``RunRuntime``)."""
    cfg = runtime.cfg.cron
    service = runtime.service
    deps = TickerDeps(
        crons=PgCrons(runtime.runs.pg), queue=runtime.queue, settle=service._apply,
        intake_stopped=runtime.intake_stopped, interval_s=cfg.tick_interval_s,
        grace_s=max(DEFAULT_GRACE_S, 5 * cfg.tick_interval_s),
        on_late=runtime.metrics.cron_fired, maintenance=runtime.maintenance)
    return ActorSpec("cron-ticker", partial(run_cron_ticker, deps))
