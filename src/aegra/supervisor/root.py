"""The supervisor: owns every actor's nursery and the staged shutdown
(docs/architecture.md, The tree).

Actors are started in three groups, each in its own nursery, in this order::

    outer   heartbeater, cancel listener, watchdog   live through the drain (leases!)
    work    workers, reaper, cron ticker             drained, then cancelled
    front   http                                     started last, stopped after the drain

``run`` reports started (and sends READY=1) only once every actor has started; the value
is what each actor passed to its own ``started()``, by name (``"http"``: the bound
addresses). Shutdown (``request_shutdown``, wired to SIGTERM/SIGINT by ``serve``):

1. stop intake: ``board.draining`` (``/ready`` answers 503, HTTP refuses new runs),
   ``intake_stopped`` is set (workers stop dequeuing), STOPPING=1;
2. drain: wait until no run is executing, at most ``drain_timeout_s``; then cancel the
   work group. Runs cancelled there requeue themselves in shielded, bounded cleanup;
3. stop the rest: HTTP shuts down gracefully (bounded), then the outer group is cancelled.

A second signal skips the drain. A crash loop or a failed non-restartable actor raises out
of ``run`` and the process exits non-zero.
"""

from __future__ import annotations

import random
import signal
from collections.abc import Sequence
from functools import partial
from typing import Any

import trio

from aegra.logs import get_logger
from aegra.runtime.board import Board
from aegra.runtime.registry import RunRegistry
from aegra.supervisor.policy import ActorSpec, RestartPolicy, supervise
from aegra.supervisor.sdnotify import Notifier

log = get_logger("aegra.supervisor")


class Supervisor:
    def __init__(
        self,
        *,
        policy: RestartPolicy,
        drain_timeout_s: float,
        board: Board | None = None,
        registry: RunRegistry | None = None,
        notifier: Notifier | None = None,
        http_grace_s: float = 5.0,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy
        self.drain_timeout_s = drain_timeout_s
        # `is None`, not `or`: an empty RunRegistry is falsy (it has __len__), and `or`
        # silently gave the supervisor a registry of its own that no worker ever fills,
        # so the drain never waited for in-flight runs.
        self.board = board if board is not None else Board()
        self.registry = registry if registry is not None else RunRegistry()
        self.notifier = notifier if notifier is not None else Notifier("")
        self.http_grace_s = http_grace_s
        self.rng = rng
        self.intake_stopped = trio.Event()  # workers stop dequeuing
        self.http_stop = trio.Event()  # HTTP actor's shutdown trigger
        self._shutdown = trio.Event()
        self._force = trio.Event()
        self.drain_deadline: float | None = None  # when the work group was (or will be) cut
        self.started: dict[str, Any] = {}  # actor name -> what its first started() passed

    def request_shutdown(self, *, force: bool = False) -> None:
        if self._shutdown.is_set() or force:
            self._force.set()
        self._shutdown.set()

    async def _group(self, specs: Sequence[ActorSpec], *,
                     task_status: trio.TaskStatus[trio.CancelScope]) -> None:
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                for spec in specs:
                    self.started[spec.name] = await nursery.start(partial(
                        supervise, spec, self.policy, self.board, rng=self.rng))
                task_status.started(scope)

    async def run(
        self,
        outer: Sequence[ActorSpec] = (),
        work: Sequence[ActorSpec] = (),
        front: Sequence[ActorSpec] = (),
        *,
        task_status: trio.TaskStatus[dict[str, Any]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        async with trio.open_nursery() as root:
            outer_done, work_done, front_done = trio.Event(), trio.Event(), trio.Event()
            outer_scope = await root.start(self._tracked, outer, outer_done)
            work_scope = await root.start(self._tracked, work, work_done)
            front_scope = await root.start(self._tracked, front, front_done)
            self.board.ready = True
            self.notifier.notify("READY=1")
            log.info("supervisor.ready", actors=sorted(self.board.actors))
            task_status.started(dict(self.started))

            await self._shutdown.wait()
            # 1. stop intake
            self.board.draining = True
            self.intake_stopped.set()
            self.notifier.notify("STOPPING=1")
            log.info("supervisor.draining", running_runs=len(self.registry),
                     drain_timeout_s=self.drain_timeout_s)
            # 2. drain the workers, at most drain_timeout_s
            self.drain_deadline = trio.current_time() + self.drain_timeout_s
            with trio.move_on_at(self.drain_deadline):
                async with trio.open_nursery() as waiter:
                    waiter.start_soon(self._cancel_on, self._force, waiter.cancel_scope)
                    await self.registry.wait_empty()
                    waiter.cancel_scope.cancel()
            self.board.stopping = True
            left = len(self.registry)
            if left:
                log.warning("supervisor.drain_deadline", cancelled_runs=left)
            work_scope.cancel()
            await work_done.wait()
            # 3. stop the rest: HTTP gracefully (bounded), then the outer actors
            self.http_stop.set()
            with trio.move_on_after(self.http_grace_s):
                await front_done.wait()
            front_scope.cancel()
            await front_done.wait()
            outer_scope.cancel()
            await outer_done.wait()
            log.info("supervisor.stopped")

    async def _tracked(self, specs: Sequence[ActorSpec], done: trio.Event, *,
                       task_status: trio.TaskStatus[trio.CancelScope]) -> None:
        try:
            await self._group(specs, task_status=task_status)
        finally:
            done.set()

    @staticmethod
    async def _cancel_on(event: trio.Event, scope: trio.CancelScope) -> None:
        await event.wait()
        scope.cancel()

    async def watch_signals(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                            ) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            task_status.started()
            async for signum in signals:
                name = signal.Signals(signum).name
                log.info("supervisor.signal", signal=name, again=self._shutdown.is_set())
                self.request_shutdown()

    async def watch_parent(self, lifeline: int) -> None:
        """A ``--processes`` child: the pipe's write end is the parent's alone, so it
        becomes readable (end of file) only when the parent is gone, however it died; then
        drain as on SIGTERM instead of serving on unsupervised. Already stopping (the
        parent forwarded a signal, then died): the drain goes on, not cut short."""
        await trio.lowlevel.wait_readable(lifeline)
        log.warning("supervisor.parent_gone", stopping=self._shutdown.is_set())
        if not self._shutdown.is_set():
            self.request_shutdown()


async def run_until_stopped(
    supervisor: Supervisor, *,
    lifeline: int | None = None,
    task_status: trio.TaskStatus[dict[str, Any]] = trio.TASK_STATUS_IGNORED,
    **groups: Sequence[ActorSpec],
) -> None:
    """Run the tree with signal handling (and, in a ``--processes`` child, the parent's
    ``lifeline``); reports started as ``Supervisor.run`` does (after READY=1), returns when
    shutdown completed."""
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.watch_signals)
        if lifeline is not None:
            nursery.start_soon(supervisor.watch_parent, lifeline)
        await supervisor.run(**groups, task_status=task_status)
        nursery.cancel_scope.cancel()
