"""The composition root's last step: build each service over its adapters.

The one place (with ``boot``) that knows both the services and the adapters that serve
their ports. One small builder per service, so each reads alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from aegra import __version__
from aegra.adapters.langgraph.graphs import GraphRegistry
from aegra.adapters.langgraph.persistence import LangGraphPersistence
from aegra.adapters.langgraph.store import PgItemStore
from aegra.adapters.langgraph.thread_states import LangGraphThreadStates
from aegra.adapters.postgres.assistants import PgAssistants
from aegra.adapters.postgres.crons import PgCrons
from aegra.adapters.postgres.pool import PgPool
from aegra.adapters.postgres.thread_reports import PgThreadReports
from aegra.adapters.postgres.threads import PgThreads
from aegra.config import Config
from aegra.domain.headers import HeaderRules
from aegra.domain.ports import Authorizer
from aegra.domain.ui import UiAssets
from aegra.project import Project
from aegra.services.admin import AdminService, Instance
from aegra.services.assistants import AssistantService
from aegra.services.container import Services
from aegra.services.crons import CronService
from aegra.services.runs import RunService
from aegra.services.store import StoreService
from aegra.services.threads import ThreadService
from aegra.services.ui import UiService
from aegra.supervisor.runtime import RunRuntime


@dataclass(frozen=True, slots=True)
class Parts:
    """What the builders may use: opened adapters, in boot order."""

    cfg: Config
    project: Project
    pg: PgPool
    langgraph: LangGraphPersistence
    graphs: GraphRegistry
    runtime: RunRuntime
    auth: Authorizer
    item_store: PgItemStore | None
    ui: UiAssets | None = None  # the built bundles, when aegra.json has ``ui``


def build(parts: Parts) -> Services:
    return Services(runs=runs_service(parts), threads=threads_service(parts),
                    assistants=assistants_service(parts), crons=crons_service(parts),
                    store=store_service(parts), auth=parts.auth,
                    ui=UiService(parts.ui) if parts.ui is not None else None,
                    admin=admin_service(parts))


def runs_service(parts: Parts) -> RunService:
    # RunRuntime makes the service first (its workers need it before there is an API);
    # what only callers need is attached here, where the authorizer is known.
    service = parts.runtime.service
    service.auth = parts.auth
    service.thread_view = parts.runtime.runner.thread_view
    service.reports = PgThreadReports(parts.pg)
    service.interrupt_admission = parts.cfg.runs.interrupt_admission
    headers = parts.project.http.configurable_headers
    if headers is not None:
        service.header_rules = HeaderRules(*headers.rules())
    return service


def threads_service(parts: Parts) -> ThreadService:
    runtime = parts.runtime
    service = ThreadService(store=PgThreads(parts.pg),
                            states=LangGraphThreadStates(parts.graphs), auth=parts.auth,
                            runs=runtime.service, active=runtime.runs, events=runtime.broker)
    service.reports = PgThreadReports(parts.pg)
    return service


def assistants_service(parts: Parts) -> AssistantService:
    return AssistantService(store=PgAssistants(parts.pg, parts.graphs.ids()),
                            graphs=parts.graphs, runs=parts.runtime.service, auth=parts.auth)


def crons_service(parts: Parts) -> CronService:
    runtime = parts.runtime
    service = CronService(store=PgCrons(parts.pg, parts.graphs.ids()), auth=parts.auth,
                          cfg=parts.cfg.cron, queue=runtime.queue,
                          settle=runtime.service._apply,  # the run service's cancel step
                          intake_stopped=runtime.service.intake_stopped)
    service.maintenance = runtime.maintenance
    return service


def store_service(parts: Parts) -> StoreService | None:
    if parts.item_store is None:
        return None
    return StoreService(parts.item_store, parts.auth)


def admin_service(parts: Parts) -> AdminService:
    runtime, workers = parts.runtime, parts.cfg.worker
    return AdminService(runtime.admin_store, runtime.maintenance, Instance(
        id=runtime.owner, version=__version__, started_at=runtime.started_at,
        worker_count=workers.count, capacity=lambda: runtime.capacity.total,
        capacity_floor=workers.count * runtime.capacity_rule.floor,
        capacity_max=workers.count * runtime.capacity_rule.ceiling,
        busy=lambda: len(runtime.registry)))
