"""The typed, frozen set of services one instance serves (replaces ``Deps.extra``).

Built once by the composition root (``aegra.supervisor.wiring``) and read by handlers
through ``aegra.api.deps.services()``.
"""

from __future__ import annotations

from dataclasses import dataclass

from aegra.domain.ports import Authorizer
from aegra.services.admin import AdminService
from aegra.services.assistants import AssistantService
from aegra.services.crons import CronService
from aegra.services.runs import RunService
from aegra.services.store import StoreService
from aegra.services.threads import ThreadService
from aegra.services.ui import UiService


@dataclass(frozen=True, slots=True)
class Services:
    runs: RunService
    threads: ThreadService
    assistants: AssistantService
    crons: CronService
    store: StoreService | None  # None when LangGraph's store is not available
    auth: Authorizer
    ui: UiService | None = None  # None when aegra.json has no ``ui``
    admin: AdminService | None = None  # /admin/*; wired by the composition root
