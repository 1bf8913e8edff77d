"""Prometheus metrics (prometheus-client), one registry per app.

HTTP request count and latency are labelled by route *template* (``/threads/<thread_id>``)
and status, never by raw path, so cardinality stays bounded. Run gauges are set by the
actors that know (workers, reaper); ``runs_by_status`` and ``queue_depth`` are refreshed on
scrape. The actors record through the small methods below, passed to them as callbacks, so
nothing outside ``api`` and ``supervisor`` imports prometheus-client. Every family and every
fixed label value is declared at construction, so ``/metrics`` shows them all from startup
(docs/metrics.md lists them).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from aegra.domain.ttl import SweepTotals

TTL_KINDS = ("threads_deleted", "threads_pruned", "checkpoints", "runs", "crons")
RUN_STATUSES = ("success", "error", "timeout", "interrupted", "cancelled")
# Runs last from seconds to hours; queue waits and cron lateness from milliseconds up.
RUN_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
WAIT_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "aegra_http_requests_total", "HTTP requests by route template and status.",
            ["method", "route", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "aegra_http_request_duration_seconds", "HTTP request latency (until headers).",
            ["method", "route"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.runs_by_status = Gauge(
            # Was ``aegra_runs``: that family name is taken by ``aegra_runs_total``.
            "aegra_runs_by_status", "Runs in the database by status (deployment-wide).",
            ["status"], registry=self.registry,
        )
        self.active_runs = Gauge(
            "aegra_active_runs", "Runs executing in this instance.", registry=self.registry,
        )
        self.worker_capacity = Gauge(
            "aegra_worker_capacity",
            "Runs this instance may execute at once: worker loops x their current size "
            "(adaptive between N_JOBS_PER_WORKER and N_JOBS_PER_WORKER_MAX).",
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "aegra_queue_depth", "Runs waiting to be claimed (status pending, deployment-wide).",
            registry=self.registry,
        )
        self.runs_total = Counter(
            "aegra_runs_total", "Runs this instance brought to a final status.", ["status"],
            registry=self.registry,
        )
        for status in RUN_STATUSES:
            self.runs_total.labels(status)
        self.run_duration = Histogram(
            "aegra_run_duration_seconds", "Run execution time, from claim to final status.",
            registry=self.registry, buckets=RUN_BUCKETS,
        )
        self.queue_wait = Histogram(
            "aegra_run_queue_wait_seconds",
            "From a run's creation (or scheduled start) to its claim by a worker.",
            registry=self.registry, buckets=WAIT_BUCKETS,
        )
        self.lease_recoveries = Counter(
            "aegra_lease_recoveries_total",
            "Runs with an expired lease that this instance's reaper recovered.",
            registry=self.registry,
        )
        self.run_retries = Counter(
            "aegra_run_retries_total", "Runs queued again for re-execution after a crash or "
            "lease loss (by this instance's reaper).", registry=self.registry,
        )
        self.cron_lateness = Histogram(
            "aegra_cron_lateness_seconds", "Cron firing time minus the scheduled occurrence.",
            registry=self.registry, buckets=WAIT_BUCKETS,
        )
        self.webhook_deliveries = Counter(
            "aegra_webhook_deliveries_total", "Webhook deliveries by final outcome, after "
            "retries.", ["outcome"], registry=self.registry,
        )
        for outcome in ("success", "failure"):
            self.webhook_deliveries.labels(outcome)
        self.ttl_swept = Counter(
            "aegra_ttl_swept_total", "Rows the TTL sweeper of this instance removed, by kind "
            "(threads deleted or pruned, checkpoints, runs, crons).", ["kind"],
            registry=self.registry,
        )
        for kind in TTL_KINDS:
            self.ttl_swept.labels(kind)
        self.loop_lag = Gauge(
            "aegra_event_loop_lag_seconds", "Last measured Trio loop lag.",
            registry=self.registry,
        )
        self.actor_restarts = Gauge(
            "aegra_actor_restarts", "Restarts of each supervised actor since start.", ["actor"],
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)  # process_resident_memory_bytes, CPU, fds
        self.refreshers: list[Callable[[], Awaitable[None]]] = []

    def run_finished(self, status: str, seconds: float | None) -> None:
        """A run this instance brought to ``status``; ``seconds`` since its claim, when this
        instance executed it (a run the reaper settles has no duration here)."""
        self.runs_total.labels(status).inc()
        if seconds is not None:
            self.run_duration.observe(seconds)

    def run_claimed(self, wait_s: float) -> None:
        self.queue_wait.observe(max(0.0, wait_s))

    def leases_recovered(self, recovered: int, retried: int) -> None:
        self.lease_recoveries.inc(recovered)
        self.run_retries.inc(retried)

    def cron_fired(self, late_s: float) -> None:
        self.cron_lateness.observe(max(0.0, late_s))

    def ttl_sweep(self, totals: SweepTotals) -> None:
        for kind, count in (("threads_deleted", totals.deleted),
                            ("threads_pruned", totals.pruned),
                            ("checkpoints", totals.checkpoints), ("runs", totals.runs),
                            ("crons", totals.crons)):
            if count:
                self.ttl_swept.labels(kind).inc(count)

    def webhook_delivered(self, ok: bool) -> None:
        self.webhook_deliveries.labels("success" if ok else "failure").inc()

    async def render(self) -> tuple[bytes, str]:
        for refresh in self.refreshers:
            await refresh()
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
