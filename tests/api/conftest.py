"""The in-process API ring: the quart-trio app over the services, built by hand over the
in-memory adapters (no database, no Redis, no LangGraph).

``make_api(owner_auth=False)`` (a fixture) returns an ``Api``: the app's test client plus
the adapters behind it, for a test to look at what a request left behind. With
``owner_auth=True`` requests authenticate with ``Authorization: Bearer <user>``
(``alice``, ``bob``, ``admin``) and every action is authorized by ``OwnerAuth``, the
docs' owner pattern that tests/e2e/apps/auth_owner.py implements with the SDK: stamp
``metadata.owner``, filter on it, the admin unfiltered, store namespaces under one's own
identity. No worker runs: a created run stays pending until it is cancelled.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
from quart.typing import TestClientProtocol

from aegra import config
from aegra.adapters.auth import AuthFailed, NoAuth
from aegra.adapters.memory.admin import MemoryAdmin
from aegra.adapters.memory.assistants import MemoryAssistants
from aegra.adapters.memory.broker import MemoryBroker
from aegra.adapters.memory.cancel import MemoryCancelBus
from aegra.adapters.memory.crons import MemoryCrons
from aegra.adapters.memory.items import MemoryItems
from aegra.adapters.memory.queue import MemoryQueue
from aegra.adapters.memory.run_store import MemoryRuns
from aegra.adapters.memory.threads import MemoryThreads
from aegra.api.app import create_app
from aegra.api.deps import Deps
from aegra.domain.assistants import SYSTEM_METADATA, NewAssistant, default_assistant_id
from aegra.domain.auth import Caller, Filter
from aegra.domain.errors import Forbidden
from aegra.domain.ports import Authenticator, Authorizer
from aegra.project import Project, empty
from aegra.runtime.board import Board
from aegra.runtime.registry import RunRegistry
from aegra.services.admin import AdminService, Instance, Maintenance
from aegra.services.assistants import AssistantService
from aegra.services.container import Services
from aegra.services.crons import CronService
from aegra.services.runs import RunService
from aegra.services.store import StoreService
from aegra.services.threads import ThreadService

GRAPHS = ["agent"]
SYSTEM_ASSISTANT = default_assistant_id("agent")
Json = dict[str, Any]


class Graphs:
    """The ``GraphCatalog`` port for one graph, "agent", that nothing ever executes."""

    def ids(self) -> list[str]:
        return list(GRAPHS)

    def __contains__(self, graph_id: object) -> bool:
        return graph_id in GRAPHS

    async def drawing(self, graph_id: str, config: Json | None, xray: bool | int) -> Json:
        return {"nodes": [{"id": graph_id}], "edges": []}

    async def schemas(self, graph_id: str, config: Json | None = None) -> Json:
        return {"graph_id": graph_id}

    async def subgraphs(self, graph_id: str, config: Json | None, namespace: str | None,
                        recurse: bool) -> Json:
        return {}

    async def delete_checkpoints(self, thread_ids: list[str]) -> None:
        return None


class NoCheckpoints:
    """The ``ThreadStates`` port where no thread has a checkpoint (no run ever executes
    here): reads find nothing, copies and deletes have nothing to move."""

    async def get_state(self, graph_id: str, config: Json, *, open_config: Json,
                        subgraphs: bool) -> Json | None:
        return None

    async def update_state(self, graph_id: str, config: Json, *, open_config: Json,
                           values: Any, as_node: str | None) -> tuple[Json, Json]:
        raise AssertionError("no graph executes in the API ring")

    async def bulk_update(self, graph_id: str, config: Json, *, open_config: Json,
                          supersteps: list[list[Json]]) -> tuple[Json, Json]:
        raise AssertionError("no graph executes in the API ring")

    async def history(self, graph_id: str, config: Json, *, open_config: Json, limit: int,
                      before: str | None, metadata: Json | None) -> list[Json]:
        return []

    async def copy_checkpoints(self, source_id: str, target_id: str) -> None:
        return None

    async def delete_checkpoints(self, thread_ids: list[str]) -> None:
        return None

    async def prune_keep_latest(self, thread_ids: list[str]) -> None:
        return None


class OwnerAuth:
    """The ``Authorizer`` port as tests/e2e/apps/auth_owner.py answers, without the SDK:
    every action stamps ``metadata.owner`` and is filtered on it; ``admin`` is not
    filtered; store namespaces must start with the caller's identity."""

    enabled = True

    def __init__(self) -> None:
        self.calls: list[tuple[str | None, str, str]] = []

    async def authorize(self, caller: Caller, resource: str, action: str,
                        value: Json) -> Filter | None:
        self.calls.append((caller.identity, resource, action))
        if caller.identity == "admin":
            return None
        if resource == "store":
            namespace = tuple(value.get("namespace") or ())
            if namespace[:1] != (caller.identity,):
                raise Forbidden("namespace must start with your identity")
            return None
        flt = {"owner": caller.identity}
        metadata = value.setdefault("metadata", {})
        if metadata is None:
            metadata = value["metadata"] = {}
        metadata.update(flt)
        return flt


class BearerAuthenticator:
    """The ``Authenticator`` port: ``Authorization: Bearer <user>`` names the caller."""

    USERS = ("alice", "bob", "admin")
    wants_body = False

    async def authenticate(self, scope: Mapping[str, Any], *, body: Any = None,
                           request: Any = None, path_params: dict[str, str] | None = None
                           ) -> Caller:
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        user = headers.get("authorization", "").removeprefix("Bearer ")
        if user not in self.USERS:
            raise AuthFailed(401, "missing or unknown bearer token")
        return Caller(identity=user, permissions=("admin",) if user == "admin" else (),
                      user={"identity": user, "permissions": [], "display_name": user,
                            "is_authenticated": True})


@dataclass
class Api:
    client: TestClientProtocol
    services: Services
    threads: MemoryThreads
    assistants: MemoryAssistants
    runs: MemoryRuns
    crons: MemoryCrons
    items: MemoryItems
    queue: MemoryQueue
    broker: MemoryBroker
    cancel_bus: MemoryCancelBus
    auth: Authorizer

    def headers(self, user: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {user}"} if user else {}

    async def call(self, method: str, path: str, user: str | None = None, *,
                   json: Any = None, query: Mapping[str, str] | None = None,
                   headers: Mapping[str, str] | None = None) -> tuple[int, Any]:
        """``(status, decoded JSON body or None)`` of one request as ``user``."""
        extra: dict[str, Any] = {} if json is None else {"json": json}
        response = await self.client.open(
            path, method=method, query_string=dict(query or {}),
            headers={**self.headers(user), **(headers or {})}, **extra)
        raw = await response.get_data()
        return response.status_code, (await response.get_json() if raw else None)


async def build_api(owner_auth: bool = False, project: Project | None = None,
                    env: Mapping[str, str] | None = None) -> Api:
    cfg = config.load(None, dict(env or {})).config
    auth: Authorizer = OwnerAuth() if owner_auth else NoAuth()
    authenticator: Authenticator | None = BearerAuthenticator() if owner_auth else None
    threads, assistants, items = MemoryThreads(), MemoryAssistants(GRAPHS), MemoryItems()
    runs = MemoryRuns(threads, assistants)
    crons = MemoryCrons(runs, GRAPHS)
    queue, broker, bus = MemoryQueue(), MemoryBroker(), MemoryCancelBus()
    graphs = Graphs()
    registry = RunRegistry()
    intake_stopped = trio.Event()
    # As supervisor/runtime.py and supervisor/wiring.py build them, over memory twins.
    run_service = RunService(runs=runs, queue=queue, broker=broker, registry=registry,
                             graphs=graphs, cancel_bus=bus,
                             intake_stopped=intake_stopped, auth=auth)
    services = Services(
        runs=run_service,
        threads=ThreadService(store=threads, states=NoCheckpoints(), auth=auth,
                              runs=run_service, active=runs, events=broker),
        assistants=AssistantService(store=assistants, graphs=graphs, runs=run_service,
                                    auth=auth),
        crons=CronService(store=crons, auth=auth, cfg=cfg.cron, queue=queue,
                          settle=run_service._apply, intake_stopped=intake_stopped),
        store=StoreService(items, auth), auth=auth, admin=admin_service(runs, crons, registry))
    if services.admin is not None:  # maintenance gates run intake, as wiring.py does
        run_service.maintenance = services.crons.maintenance = services.admin.maintenance
    # The graph's default assistant, as boot makes one per graph.
    await assistants.create(NewAssistant(
        assistant_id=SYSTEM_ASSISTANT, graph_id="agent", name="agent", description=None,
        config={}, context={}, metadata=dict(SYSTEM_METADATA)))
    deps = Deps(config=cfg, project=project or empty(Path(".")), board=Board(ready=True),
                registry=registry, version="test", services=services,
                authenticator=authenticator)
    return Api(client=create_app(deps).test_client(), services=services, threads=threads,
               assistants=assistants, runs=runs, crons=crons, items=items, queue=queue,
               broker=broker, cancel_bus=bus, auth=auth)


def admin_service(runs: MemoryRuns, crons: MemoryCrons, registry: RunRegistry
                  ) -> AdminService:
    """As supervisor/wiring.py builds it: WORKER_COUNT 3 x N_JOBS_PER_WORKER 10 (max 100)."""
    store = MemoryAdmin(runs, crons)
    return AdminService(store, Maintenance(store, refresh_s=0.0), Instance(
        id="test-instance", version="test", started_at=trio.current_time(), worker_count=3,
        capacity=lambda: 30, capacity_floor=30, capacity_max=300,
        busy=lambda: len(registry)))


@pytest.fixture
def make_api() -> Callable[..., Awaitable[Api]]:
    """``await make_api(owner_auth=..., project=..., env=...)``: a fresh app and its
    adapters; ``env``: settings as environment variables (``AEGRA__SECTION__KEY``)."""
    return build_api
