"""The composition root's last step: build each service over its adapters.

The one place (with ``boot``) that knows both the services and the adapters that serve
their ports. One small builder per service, so each reads alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aegra.config import Config
from aegra.domain.ports import Authorizer
from aegra.project import Project
from aegra.services.assistants import AssistantService
from aegra.services.container import Services
from aegra.services.crons import CronService
from aegra.services.store import StoreService
from aegra.services.threads import ThreadService
from aegra.supervisor.runtime import RunRuntime


@dataclass(frozen=True, slots=True)
class Parts:
    """What the builders may use: opened adapters, in boot order."""

    cfg: Config
    project: Project
    pg: Any  # PgPool
    langgraph: Any  # LangGraphPersistence
    graphs: Any  # GraphRegistry
    runtime: RunRuntime
    auth: Authorizer
    item_store: Any  # PgItemStore | None


def build(parts: Parts) -> Services:
    return Services(runs=parts.runtime.service, threads=threads_service(parts),
                    assistants=assistants_service(parts), crons=crons_service(parts),
                    store=store_service(parts), auth=parts.auth)


def threads_service(parts: Parts) -> ThreadService:
    return ThreadService()


def assistants_service(parts: Parts) -> AssistantService:
    return AssistantService()


def crons_service(parts: Parts) -> CronService:
    return CronService()


def store_service(parts: Parts) -> StoreService | None:
    return StoreService(parts.item_store) if parts.item_store is not None else None
