"""Production wiring: open the bridge, build the adapters, run the supervisor tree.

Order (STYLE §2): asyncio loop -> PostgreSQL (wait for it, migrate) -> LangGraph
checkpointer/store -> Redis (when enabled) -> app -> actors, HTTP last. Everything opened
here is closed here, in reverse, under a bounded shield.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from functools import partial

import trio

from aegra import __version__
from aegra.adapters import aio, webhook
from aegra.adapters import auth as auth_adapter
from aegra.adapters import tracing as otel
from aegra.adapters.langgraph import store_index
from aegra.adapters.langgraph.graphs import GraphLoadError, GraphRegistry
from aegra.adapters.langgraph.persistence import LangGraphPersistence
from aegra.adapters.langgraph.store import PgItemStore
from aegra.adapters.postgres import assistants as assistants_db
from aegra.adapters.postgres import migrate
from aegra.adapters.postgres.pool import PgPool
from aegra.adapters.redis.client import RedisClient
from aegra.adapters.tracing import http as otel_http
from aegra.adapters.ui import build as ui_build
from aegra.api.app import create_app
from aegra.api.deps import Deps
from aegra.api.metrics import Metrics
from aegra.api.mount import load_user_app, mount
from aegra.api.prefix import prefixed
from aegra.config import Config, ConfigError, exposed_without_auth
from aegra.domain.errors import StoreUnavailable
from aegra.domain.webhooks import render_headers
from aegra.logs import get_logger
from aegra.project import Project
from aegra.runtime.board import Board
from aegra.runtime.capacity import Capacity
from aegra.runtime.registry import RunRegistry
from aegra.supervisor import processes, wiring
from aegra.supervisor.http import run_http
from aegra.supervisor.policy import ActorSpec, RestartPolicy
from aegra.supervisor.root import Supervisor, run_until_stopped
from aegra.supervisor.runtime import RunRuntime
from aegra.supervisor.sdnotify import Notifier, watchdog_interval_s
from aegra.supervisor.sweeper import sweeper_specs
from aegra.supervisor.watchdog import run_watchdog

log = get_logger("aegra.boot")


def _lag_seen(metrics: Metrics, capacity: Capacity, lag_s: float) -> None:
    """The watchdog's measurement: the gauge, and the capacity actor's input."""
    metrics.loop_lag.set(lag_s)
    capacity.observe_lag(lag_s)


async def _restarts_seen(metrics: Metrics, board: Board) -> None:
    """On scrape: each supervised actor's restarts (actor names are fixed, never ids)."""
    for name, actor in board.actors.items():
        metrics.actor_restarts.labels(name).set(actor.restarts)


async def open_database(cfg: Config) -> PgPool:
    """Open the asyncpg pool, waiting up to ``startup_wait_s`` for PostgreSQL to accept us."""
    pg = PgPool(cfg.postgres.dsn(), min_size=cfg.postgres.pool_min_size,
                max_size=cfg.postgres.pool_max_size,
                connect_timeout_s=cfg.postgres.connect_timeout_s)
    deadline = trio.current_time() + cfg.postgres.startup_wait_s
    attempt = 0
    while True:
        attempt += 1
        try:
            await pg.open()
            return pg
        except StoreUnavailable as exc:
            if trio.current_time() >= deadline:
                raise
            log.warning("database.waiting", attempt=attempt, error=str(exc))
            await trio.sleep(min(2.0, 0.25 * attempt))


async def migrate_on_startup(cfg: Config, project: Project) -> None:
    if not cfg.postgres.run_migrations_on_startup:
        found = await trio.to_thread.run_sync(migrate.current, cfg.postgres.dsn())
        head = migrate.head()
        if found != head:
            raise StoreUnavailable(
                f"database schema is at {found or 'nothing'}, this version needs {head}; "
                "run `aegra db upgrade` (RUN_MIGRATIONS_ON_STARTUP=false)")
        log.info("migrations.skipped", reason="RUN_MIGRATIONS_ON_STARTUP=false", head=head)
        return
    from aegra.adapters.langgraph.schema import ensure_langgraph_tables

    dsn = cfg.postgres.dsn()
    t0 = trio.current_time()
    before, head, ran = await trio.to_thread.run_sync(migrate.ensure_migrated, dsn)
    langgraph_changed = await trio.to_thread.run_sync(ensure_langgraph_tables, dsn)
    log.info("migrations.done", before=before, head=head, upgraded=ran,
             langgraph_tables_changed=langgraph_changed,
             ms=round((trio.current_time() - t0) * 1000, 1))


def _webhook_sender(cfg: Config, project: Project) -> webhook.WebhookSender | None:
    """Sending under the project's URL policy, with its headers (env templates filled),
    signed with AEGRA_WEBHOOK_SECRET; with ``http.disable_webhooks`` none is made and no
    delivery is written, as on the platform (the URL a run names is still checked when
    it is created)."""
    if project.http.disable_webhooks:
        return None
    hooks = project.webhooks
    try:
        headers = render_headers(hooks.headers, os.environ, hooks.env_prefix)
    except ValueError as exc:
        raise ConfigError(f"config error: webhooks.headers ({project.source or 'aegra.json'})"
                          f": {exc}") from None
    try:
        sender = webhook.WebhookSender(policy=hooks.url, headers=headers,
                                       secret=cfg.webhooks.secret,
                                       timeout_s=cfg.webhooks.timeout_s)
    except ValueError as exc:
        raise ConfigError(f"config error: {exc}") from None
    if not sender.signed:
        log.info("webhook.unsigned", reason="AEGRA_WEBHOOK_SECRET is not set")
    return sender


async def _build_ui(cfg: Config, project: Project) -> ui_build.Built | None:
    """aegra.json's ``ui`` bundles, built with Node (only when ``ui`` is configured and
    ``http.disable_ui`` is not set); a failure stops startup with its one line."""
    if project.http.disable_ui:
        return None
    try:
        return await ui_build.build(project, cfg.ui)
    except ui_build.UiBuildError as exc:
        log.critical("ui.build_failed", error=str(exc))
        raise SystemExit(f"aegra: {exc}") from None


async def serve(cfg: Config, project: Project, *, sources: Mapping[str, str] | None = None,
                task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    """Run one aegra instance until SIGTERM/SIGINT; raise on a fatal error."""
    for dep in project.dependencies:
        if str(dep) not in sys.path:
            sys.path.insert(0, str(dep))
    user_app = load_user_app(project)  # before any I/O: a broken http.app fails fast
    # Before any I/O too, and fail closed: a broken auth module never serves.
    sdk_auth = auth_adapter.load(cfg, project, sources,
                                 dev=os.environ.get("AEGRA_DEV_MODE") == "1")
    try:
        graphs = GraphRegistry.load(project)  # before any I/O too: a broken graph fails fast
    except GraphLoadError as exc:
        log.critical("graphs.load_failed", error=str(exc))
        # SystemExit carries the one line to stderr and exits 1 (cli re-raises it as is).
        raise SystemExit(f"aegra: {exc}") from None
    webhook_sender = _webhook_sender(cfg, project)
    ui = await _build_ui(cfg, project)  # before any I/O too: a broken component fails fast
    # Auth may be on through aegra.json's auth.path alone (AUTH_TYPE left at noop).
    exposed = exposed_without_auth(cfg) if sdk_auth is None else None
    if exposed is not None:
        log.warning("server.unauthenticated", detail=exposed)
    tracing = otel.from_env(os.environ)  # None unless an OTLP endpoint is configured
    notifier = Notifier()
    board, registry, metrics = Board(), RunRegistry(), Metrics()
    metrics.refreshers.append(partial(_restarts_seen, metrics, board))
    async with aio.open_loop():
        pg = await open_database(cfg)
        lg: LangGraphPersistence | None = None
        redis: RedisClient | None = None
        runtime: RunRuntime | None = None
        try:
            await migrate_on_startup(cfg, project)
            store_opts = await store_index.prepare(cfg, project)
            lg = LangGraphPersistence(cfg.postgres.dsn(),
                                      max_size=cfg.postgres.checkpointer_pool_max_size,
                                      store_index=store_opts.index, store_ttl=store_opts.ttl)
            await lg.open()
            graphs.bind(lg.checkpointer, lg.store)
            await assistants_db.ensure_defaults(pg, graphs)  # before HTTP serves them
            if cfg.redis.enabled:
                redis = RedisClient(cfg.redis.url, max_connections=cfg.redis.max_connections,
                                    pool_timeout_s=cfg.redis.pool_timeout_s)
                await redis.open()
            deps = Deps(config=cfg, project=project, board=board, registry=registry,
                        version=__version__, pg=pg, langgraph=lg, redis=redis)
            deps.features["store_semantic_search"] = store_opts.semantic
            deps.authenticator = sdk_auth
            core = create_app(deps, metrics)
            if tracing is not None:
                otel_http.install(core, tracing.tracer)
            app = prefixed(mount(core, user_app,
                                 sdk_auth if project.http.enable_custom_route_auth else None),
                           project.http.mount_prefix)
            sup_cfg = cfg.supervisor
            supervisor = Supervisor(
                policy=RestartPolicy(max_restarts=sup_cfg.max_restarts,
                                     window_s=sup_cfg.restart_window_s,
                                     backoff_initial_s=sup_cfg.backoff_initial_s,
                                     backoff_max_s=sup_cfg.backoff_max_s,
                                     outage_backoff_max_s=sup_cfg.outage_backoff_max_s),
                drain_timeout_s=cfg.shutdown.drain_timeout_s,
                http_grace_s=cfg.shutdown.http_grace_s,
                board=board, registry=registry, notifier=notifier,
            )
            runtime = RunRuntime(cfg, pg=pg, graphs=graphs, registry=registry,
                                 intake_stopped=supervisor.intake_stopped, metrics=metrics,
                                 redis=redis, webhook_sender=webhook_sender,
                                 tracer=tracing.tracer if tracing is not None else None)
            await runtime.open()
            deps.services = wiring.build(wiring.Parts(
                cfg=cfg, project=project, pg=pg, langgraph=lg, graphs=graphs,
                runtime=runtime, auth=sdk_auth or auth_adapter.NoAuth(),
                item_store=PgItemStore(lg, semantic=store_opts.semantic,
                                       ttl_enabled=store_opts.ttl is not None),
                ui=ui.assets if ui is not None else None))
            await runtime.recover()
            outer = [ActorSpec("watchdog", partial(
                run_watchdog, notifier, watchdog_interval_s(),
                partial(_lag_seen, metrics, runtime.capacity), registry.ids,
                lambda: board.ready,
            ))]
            front = [ActorSpec("http", partial(
                run_http, app, cfg.server.host, cfg.server.port, supervisor.http_stop,
                grace_s=cfg.shutdown.http_grace_s,
            ), restartable=False)]
            outer += runtime.outer_actors()
            async with trio.open_nursery() as nursery:
                started = await nursery.start(partial(
                    run_until_stopped, supervisor, lifeline=processes.lifeline_fd(),
                    outer=outer,
                    work=[*runtime.work_actors(),
                          *sweeper_specs(cfg, project, pg, metrics.ttl_sweep)],
                    front=front))
                task_status.started(started["http"])  # after READY: the bound addresses
        finally:
            with trio.move_on_after(10, shield=True):
                if runtime is not None:
                    await runtime.close()
                if redis is not None:
                    await redis.close()
                if lg is not None:
                    await lg.close()
                await pg.close()
                if tracing is not None:  # the last spans go out before the process ends
                    await trio.to_thread.run_sync(tracing.shutdown)
