"""Prometheus metrics (prometheus-client), one registry per app.

HTTP request count and latency are labelled by route *template* (``/threads/<thread_id>``)
and status, never by raw path, so cardinality stays bounded. Run gauges are set by the
actors that know (workers, reaper); ``runs_by_status`` is refreshed on scrape.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)


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
            "aegra_runs", "Runs in the database by status.", ["status"], registry=self.registry,
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
            "aegra_queue_depth", "Run ids waiting in the job queue.", registry=self.registry,
        )
        self.loop_lag = Gauge(
            "aegra_event_loop_lag_seconds", "Last measured Trio loop lag.",
            registry=self.registry,
        )
        self.actor_restarts = Gauge(
            "aegra_actor_restarts", "Restarts of each supervised actor since start.", ["actor"],
            registry=self.registry,
        )
        self.refreshers: list[Callable[[], Awaitable[None]]] = []

    async def render(self) -> tuple[bytes, str]:
        for refresh in self.refreshers:
            await refresh()
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
