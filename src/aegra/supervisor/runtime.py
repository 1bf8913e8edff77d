"""Builds the run machinery for one instance: queue, broker, run store, runner, service,
and the actor specs of the workers and the background nursery.

Single-instance mode uses the in-memory queue and broker; the worker path is the same
one production uses (docs/architecture.md, One path for every run): write, queue, claim
with a lease, execute, finish.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, NoReturn, TypeVarTuple

import trio
from opentelemetry.trace import Tracer

from aegra import logs
from aegra.adapters.langgraph.graphs import GraphRegistry
from aegra.adapters.langgraph.runner import LangGraphRunner
from aegra.adapters.memory.broker import MemoryBroker
from aegra.adapters.memory.queue import MemoryQueue
from aegra.adapters.postgres.admin import PgAdmin
from aegra.adapters.postgres.leases import PgLeases
from aegra.adapters.postgres.listen import PgListener
from aegra.adapters.postgres.pool import PgPool
from aegra.adapters.postgres.runs import PgRuns
from aegra.adapters.postgres.threads import PgThreads
from aegra.adapters.postgres.webhooks import PgWebhookOutbox
from aegra.adapters.redis.client import RedisClient
from aegra.adapters.webhook import WebhookSender
from aegra.api.metrics import Metrics
from aegra.config import Config
from aegra.domain.capacity import CapacityRule
from aegra.domain.leases import Expired
from aegra.domain.ports import CancelBus, EventBroker, GraphRunner, JobQueue, LeaseStore
from aegra.runtime.capacity import Capacity
from aegra.runtime.registry import RunRegistry
from aegra.services.admin import Maintenance
from aegra.services.runs import RunService
from aegra.supervisor.cancel_listener import run_cancel_listener
from aegra.supervisor.capacity import run_capacity
from aegra.supervisor.cron import ticker_spec
from aegra.supervisor.heartbeat import run_heartbeater
from aegra.supervisor.policy import ActorSpec
from aegra.supervisor.reaper import run_reaper
from aegra.supervisor.webhooks import Wakeup, run_webhook_dispatcher
from aegra.supervisor.worker import WorkerDeps, run_worker

log = logs.get_logger("aegra.runtime")
Ts = TypeVarTuple("Ts")
Task = Callable[..., Awaitable[object]]


def instance_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Background:
    """A supervisor-owned nursery for fire-and-forget work (webhooks, delayed queue puts)."""

    def __init__(self) -> None:
        self.nursery: trio.Nursery | None = None
        self.pending: list[tuple[Task, tuple[object, ...]]] = []

    def spawn(self, fn: Callable[[*Ts], Awaitable[object]], *args: *Ts) -> None:
        if self.nursery is None:
            self.pending.append((fn, args))
        else:
            self.nursery.start_soon(_guarded, fn, *args)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> NoReturn:
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            for fn, args in self.pending:
                nursery.start_soon(_guarded, fn, *args)
            self.pending.clear()
            task_status.started()
            await trio.sleep_forever()
        raise AssertionError("unreachable")


async def _guarded(fn: Task, *args: object) -> None:
    try:
        await fn(*args)
    except Exception as exc:  # background work must never take the actor down
        log.error("background.failed", task=getattr(fn, "__name__", repr(fn)),
                  error=repr(exc), exc_info=exc)


class RunRuntime:
    def __init__(self, cfg: Config, *, pg: PgPool, graphs: GraphRegistry,
                 registry: RunRegistry, intake_stopped: trio.Event, metrics: Metrics,
                 redis: RedisClient | None = None,
                 webhook_sender: WebhookSender | None = None,
                 tracer: Tracer | None = None) -> None:
        self.cfg = cfg
        self.owner = instance_id()
        self.background = Background()
        self.intake_stopped = intake_stopped
        self.cancel_bus: CancelBus | None = None
        self.listener: PgListener | None = None  # the LISTEN connection (channel postgres)
        self.queue: JobQueue
        self.broker: EventBroker
        if redis is not None:
            # Distributed mode (REDIS_BROKER_ENABLED): same actors, Redis adapters.
            from aegra.adapters.redis.broker import RedisBroker
            from aegra.adapters.redis.cancel import RedisCancelBus
            from aegra.adapters.redis.queue import RedisQueue

            client = redis.client
            assert client is not None, "the Redis client is opened before the runtime"
            broker = RedisBroker(client, linger_s=cfg.redis.publish_linger_s,
                                 max_events=cfg.stream.replay_max_events,
                                 max_bytes=cfg.stream.replay_max_bytes)
            self.broker = broker
            self.queue = RedisQueue(client, pg, poll_s=cfg.reaper.postgres_poll_interval_s,
                                    spawn=self.background.spawn)
            self.cancel_bus = RedisCancelBus(client, broker.fanout)
        elif cfg.server.channel == "postgres":
            # Several processes on one database, no Redis (issue 11): the queue, the
            # cancels, the run streams and thread events go through PostgreSQL.
            from aegra.adapters.postgres.broker import PgBroker
            from aegra.adapters.postgres.cancel import PgCancelBus
            from aegra.adapters.postgres.queue import PgJobQueue

            self.listener = PgListener(pg.dsn)
            self.queue = PgJobQueue(pg, self.listener,
                                    poll_s=cfg.reaper.postgres_poll_interval_s)
            self.cancel_bus = PgCancelBus(pg, self.listener)
            self.broker = PgBroker(pg, self.listener,
                                   max_events=cfg.stream.replay_max_events,
                                   max_bytes=cfg.stream.replay_max_bytes)
        else:
            self.queue = MemoryQueue(spawn=self.background.spawn)
            self.broker = MemoryBroker(max_events=cfg.stream.replay_max_events,
                                       max_bytes=cfg.stream.replay_max_bytes)
        # None under http.disable_webhooks: then no delivery is written (issue 13).
        self.webhook_sender = webhook_sender
        outbox = webhook_sender is not None
        self.runs = PgRuns(pg, outbox=outbox)  # concrete: metrics, cron store share its pool
        self.leases: LeaseStore = PgLeases(pg, outbox=outbox)
        self.outbox = PgWebhookOutbox(pg)
        self.webhook_wakeup = Wakeup()
        self.threads = PgThreads(pg)
        self.graphs = graphs
        self.registry = registry
        self.metrics = metrics
        self.service = RunService(
            runs=self.runs, queue=self.queue, broker=self.broker, registry=registry,
            graphs=graphs, delete_thread=self.delete_thread, webhook=self.webhook,
            spawn=self.background.spawn, intake_stopped=intake_stopped,
            poll_s=cfg.reaper.postgres_poll_interval_s, cancel_bus=self.cancel_bus)
        self.started_at = trio.current_time()
        self.admin_store = PgAdmin(pg)
        # Deployment-wide, from the database: run creation and the cron ticker ask it.
        self.maintenance = Maintenance(self.admin_store)
        self.service.maintenance = self.maintenance
        self.service.webhooks = self.outbox  # the delivery log and redeliver
        self.runner: GraphRunner = LangGraphRunner(graphs, self.owner, tracer=tracer)
        floor = cfg.worker.jobs_per_worker
        self.capacity_rule = CapacityRule(
            floor=floor, ceiling=max(floor, cfg.worker.jobs_per_worker_max),
            lag_high_s=cfg.worker.capacity_lag_high_s, cpu_high=cfg.worker.capacity_cpu_high)
        self.capacity = Capacity(floor)
        metrics.worker_capacity.set(floor * cfg.worker.count)
        self.worker_deps = WorkerDeps(
            queue=self.queue, runs=self.runs, runner=self.runner,
            broker=self.broker, registry=registry, owner=self.owner,
            lease_s=cfg.lease.duration_s, job_timeout_s=cfg.worker.job_timeout_s,
            intake_stopped=intake_stopped, after_finish=self.service.after_finish,
            on_active=metrics.active_runs.set, on_claimed=metrics.run_claimed,
            on_finished=metrics.run_finished)

    async def webhook(self, url: str, payload: dict[str, Any]) -> object:
        """A run with a webhook finished here: its delivery was written with its final
        status, so only wake the dispatcher (any instance's will do)."""
        if self.webhook_sender is None:
            log.info("webhook.skipped", run_id=payload.get("run_id"),
                     reason="http.disable_webhooks is set")
        else:
            self.webhook_wakeup.set()
        return None

    async def settled(self, run: Expired, status: str) -> None:
        """The reaper brought a run to its final status: count it, then the service's
        follow-ups (webhook, the thread's next run)."""
        self.metrics.run_finished(status, None)
        await self.service.settled(run, status)

    async def refresh_metrics(self) -> None:
        """On scrape: runs by status (one grouped query); the queue depth is the pending
        count, deployment-wide (the database is shared; the Redis list is not the truth)."""
        rows = await self.runs.pg.fetch("SELECT status, count(*) AS n FROM runs GROUP BY status")
        counts = {r["status"]: r["n"] for r in rows}
        for status in ("pending", "running", "success", "error", "timeout", "interrupted"):
            self.metrics.runs_by_status.labels(status).set(counts.get(status, 0))
        self.metrics.queue_depth.set(counts.get("pending", 0))

    async def open(self) -> None:
        self.metrics.refreshers.append(self.refresh_metrics)
        if self.listener is not None:
            await self.listener.open()
        await self.broker.open()

    async def close(self) -> None:
        await self.broker.close()
        if self.listener is not None:
            await self.listener.close()

    async def delete_thread(self, thread_id: str) -> None:
        await self.threads.delete([thread_id])  # with its checkpoints

    def outer_actors(self) -> list[ActorSpec]:
        """Outer group: lives through the drain (leases must stay alive meanwhile)."""
        cfg = self.cfg
        actors = [
            ActorSpec("background", self.background.run),
            ActorSpec("heartbeater", partial(
                run_heartbeater, self.leases, self.registry, owner=self.owner,
                lease_s=cfg.lease.duration_s, interval_s=cfg.lease.heartbeat_interval_s,
                on_beat=self.broker.touch)),
        ]
        if self.cancel_bus is not None:
            actors.append(ActorSpec("cancel_listener", partial(
                run_cancel_listener, self.cancel_bus, self.registry,
                partial(self.leases.cancel_requests, self.owner))))
        return actors

    def work_actors(self) -> list[ActorSpec]:
        cfg = self.cfg
        workers = [ActorSpec(f"worker-{i}", partial(run_worker, self.worker_deps,
                                                    self.capacity))
                   for i in range(cfg.worker.count)]
        reaper = ActorSpec("reaper", partial(
            run_reaper, self.leases, self.queue, self.runner.finished, self.settled,
            interval_s=cfg.reaper.interval_s, max_retries=cfg.worker.max_retries,
            stuck_pending_s=cfg.reaper.stuck_pending_threshold_s,
            on_recovered=self.metrics.leases_recovered))
        crons = [ticker_spec(self)] if cfg.cron.enabled else []
        sizing = []
        if self.capacity_rule.adaptive:
            sizing = [ActorSpec("capacity", partial(
                run_capacity, self.capacity_rule, self.capacity,
                interval_s=cfg.worker.capacity_interval_s,
                on_size=self.metrics.worker_capacity.set))]
        return [*workers, reaper, *crons, *sizing, *self._webhook_actors()]

    def _webhook_actors(self) -> list[ActorSpec]:
        if self.webhook_sender is None:
            return []
        return [ActorSpec("webhooks", partial(
            run_webhook_dispatcher, self.cfg.webhooks, self.outbox, self.webhook_sender,
            owner=self.owner, wakeup=self.webhook_wakeup,
            on_outcome=self.metrics.webhook_delivered))]

    async def recover(self) -> None:
        """Startup: the in-memory queue is empty, so pending runs are queued again. Runs a
        dead process left ``running`` come back through the reaper once their lease ends."""
        if self.cancel_bus is not None:
            return  # Redis mode: the queue outlived us; the reaper resends lost messages
        pending = await self.runs.pending_ids()
        for run_id in pending:
            await self.queue.put(run_id)
        if pending:
            log.info("runs.requeued_at_startup", count=len(pending))
