"""One-for-one restart with jittered exponential backoff; crash loops end the process.

``supervise`` wraps one actor. It reports ``started`` once, after the actor's first
successful start, so the root's ``nursery.start`` order means readiness. An actor that
raises ``Exception`` (never ``BaseException``: cancellation passes through) is logged and
restarted after ``initial * 2**(n-1)`` seconds (capped, then scaled down by up to
``jitter``), where n counts its crashes inside the window. More than ``max_restarts``
crashes inside ``window_s`` re-raise as ``CrashLoop``: the root's nursery cancels
everything and the process exits non-zero so systemd/compose/Kubernetes restart it.
Actors never return; a return is a crash, unless the supervisor is stopping.

A ``StoreUnavailable`` (PostgreSQL or Redis cannot be reached) is not a crash: an outage is
not a bug in the actor, and ending the process would not bring the database back. The
actor is marked ``waiting``, ``actor.store_unavailable`` is logged, and it is started again
after the same backoff capped at ``outage_backoff_max_s`` (short, so it is back soon after
the store), counted over its outages inside ``window_s``; outages never reach
``max_restarts``. Any other exception still counts toward the crash loop.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio

from aegra.domain.errors import StoreUnavailable
from aegra.logs import get_logger
from aegra.runtime.board import Board

log = get_logger("aegra.supervisor")

ActorFn = Callable[..., Awaitable[Any]]  # async def fn(*, task_status) -> NoReturn


class CrashLoop(Exception):
    def __init__(self, actor: str, crashes: int, window_s: float) -> None:
        super().__init__(f"actor {actor!r} crashed {crashes} times in {window_s:g}s; giving up")
        self.actor = actor


class ActorReturned(Exception):
    pass


@dataclass(frozen=True)
class RestartPolicy:
    max_restarts: int = 5
    window_s: float = 60.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    jitter: float = 0.25  # fraction of the delay that may be taken off at random
    outage_backoff_max_s: float = 5.0  # retry cap while the store is unreachable

    def delay(self, crashes: int, rng: random.Random | None = None, *,
              cap: float | None = None) -> float:
        cap = self.backoff_max_s if cap is None else cap
        base = min(cap, self.backoff_initial_s * (2.0 ** max(0, crashes - 1)))
        if self.jitter <= 0:
            return base
        return base * (1.0 - self.jitter * (rng or random).random())


@dataclass(frozen=True)
class ActorSpec:
    name: str
    fn: ActorFn
    restartable: bool = True


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


async def supervise(
    spec: ActorSpec,
    policy: RestartPolicy,
    board: Board,
    *,
    rng: random.Random | None = None,
    task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
) -> None:
    state = board.actor(spec.name)
    crashes: deque[float] = deque()
    outages: deque[float] = deque()
    reported = False
    while True:
        if state.status != "waiting":  # waiting lasts until the store answers a start
            state.status = "starting"
        try:
            async with trio.open_nursery() as nursery:
                value = await nursery.start(spec.fn)
                state.status = "running"
                if not reported:
                    reported = True
                    task_status.started(value)
            if board.stopping:
                state.status = "stopped"
                return
            raise ActorReturned(f"actor {spec.name!r} returned")
        except Exception as exc:
            error = _leaf(exc)
            if not spec.restartable:
                state.status = "failed"
                state.last_error = repr(error)
                log.error("actor.failed", actor=spec.name, error=repr(error), exc_info=error)
                raise
            now = trio.current_time()
            state.last_error = repr(error)
            if isinstance(error, StoreUnavailable):
                _count(outages, now, policy.window_s)
                state.outages += 1
                delay = policy.delay(len(outages), rng, cap=policy.outage_backoff_max_s)
                state.status = "waiting"
                log.warning("actor.store_unavailable", actor=spec.name, error=str(error),
                            retry_in_s=round(delay, 3))
                await trio.sleep(delay)
                continue
            _count(crashes, now, policy.window_s)
            state.restarts += 1
            if len(crashes) > policy.max_restarts:
                state.status = "failed"
                log.error("actor.crash_loop", actor=spec.name, crashes=len(crashes),
                          window_s=policy.window_s, error=repr(error))
                raise CrashLoop(spec.name, len(crashes), policy.window_s) from error
            delay = policy.delay(len(crashes), rng)
            state.status = "restarting"
            log.warning("actor.crashed", actor=spec.name, error=repr(error),
                        restart_in_s=round(delay, 3), exc_info=error)
            await trio.sleep(delay)


def _count(times: deque[float], now: float, window_s: float) -> None:
    """Record an event at ``now`` and forget those older than the window."""
    times.append(now)
    while times and times[0] <= now - window_s:
        times.popleft()
