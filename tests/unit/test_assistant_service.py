"""AssistantService over the in-memory store and fakes: what is authorized with which
value, and what a refused or filtered caller can never cause."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest

from aegra.adapters.memory.assistants import MemoryAssistants
from aegra.domain.assistants import NewAssistant, default_assistant_id
from aegra.domain.auth import Caller, Filter
from aegra.domain.errors import Conflict, Forbidden, NotFound
from aegra.services.assistants import AssistantService

ALICE = Caller(identity="alice")
BOB = Caller(identity="bob")
ADMIN = Caller(identity="admin")


class OwnerAuth:
    """The docs' owner pattern; bob may not delete threads at all."""

    enabled = True

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str | None, dict[str, Any]]] = []

    async def authorize(self, caller: Caller, resource: str, action: str,
                        value: dict[str, Any]) -> Filter | None:
        self.calls.append((resource, action, caller.identity, dict(value)))
        if caller.identity == "admin":
            return None
        if resource == "threads" and caller.identity == "bob":
            raise Forbidden("no")
        flt = {"owner": caller.identity}
        if "metadata" in value:
            value["metadata"].update(flt)
        return flt


class Graphs:
    def ids(self) -> list[str]:
        return ["agent"]

    def __contains__(self, graph_id: object) -> bool:
        return graph_id == "agent"

    async def drawing(self, graph_id: str, config: dict[str, Any] | None,
                      xray: bool | int) -> dict[str, Any]:
        return {"graph": graph_id}

    async def schemas(self, graph_id: str, config: dict[str, Any] | None = None
                      ) -> dict[str, Any]:
        return {"graph_id": graph_id}

    async def subgraphs(self, graph_id: str, config: dict[str, Any] | None,
                        namespace: str | None, recurse: bool) -> dict[str, Any]:
        return {}

    async def delete_checkpoints(self, thread_ids: list[str]) -> None:
        self.dropped = list(thread_ids)


class Runs:
    def __init__(self) -> None:
        self.cancelled: list[tuple[list[str], str]] = []

    async def cancel(self, run_ids: list[str], action: str) -> None:
        self.cancelled.append((run_ids, action))


def make() -> tuple[AssistantService, MemoryAssistants, OwnerAuth, Runs, Graphs]:
    store, auth, runs, graphs = MemoryAssistants(["agent"]), OwnerAuth(), Runs(), Graphs()
    return AssistantService(store=store, graphs=graphs, runs=runs, auth=auth), store, auth, \
        runs, graphs


async def create(service: AssistantService, caller: Caller, assistant_id: str,
                 **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"graph_id": "agent", "config": {}, "context": None,
                            "metadata": None, "name": None, "description": None,
                            "if_exists": None}
    args.update(kw)
    return await service.create(caller, assistant_id=assistant_id, **args)


AID = "00000000-0000-4000-8000-000000000001"


async def test_create_stamps_and_values_have_the_platform_shape() -> None:
    service, _, auth, _, _ = make()
    row = await create(service, ALICE, AID, metadata={"k": 1})
    assert row["metadata"] == {"k": 1, "owner": "alice"}
    resource, action, _, value = auth.calls[-1]
    assert (resource, action) == ("assistants", "create")
    assert value["assistant_id"] == UUID(AID) and value["if_exists"] == "raise"
    assert value["name"] == "Untitled"
    await service.get(ALICE, AID)
    assert auth.calls[-1][:2] == ("assistants", "read")
    assert auth.calls[-1][3] == {"assistant_id": UUID(AID), "metadata": {"owner": "alice"}}


async def test_foreign_id_is_a_conflict_even_with_do_nothing() -> None:
    service, _, _, _, _ = make()
    await create(service, ALICE, AID)
    for if_exists in ("raise", "do_nothing"):
        with pytest.raises(Conflict):
            await create(service, BOB, AID, if_exists=if_exists)
    same = await create(service, ALICE, AID, if_exists="do_nothing")
    assert same["metadata"] == {"owner": "alice"}


async def test_filtered_caller_changes_nothing_and_cancels_nothing() -> None:
    service, store, _, runs, _ = make()
    before = await create(service, ALICE, AID)
    store.runs["r1"] = (AID, "running")
    for call in (service.get(BOB, AID),
                 service.patch(BOB, AID, graph_id=None, config={}, context=None,
                               metadata={"owner": "bob"}, name="x", description=None),
                 service.set_latest(BOB, AID, 1),
                 service.delete(BOB, AID, delete_threads=True),
                 service.versions(BOB, AID, metadata=None, limit=10, offset=0),
                 service.schemas(BOB, AID), service.graph(BOB, AID, False),
                 service.subgraphs(BOB, AID, None, False)):
        with pytest.raises(NotFound):
            await call
    assert runs.cancelled == []
    assert await service.get(ALICE, AID) == before
    assert await service.get(ADMIN, AID) == before


async def test_delete_cancels_in_flight_runs_then_cascades_per_thread() -> None:
    service, store, auth, runs, graphs = make()
    await create(service, ALICE, AID)
    store.runs.update({"r1": (AID, "pending"), "r2": (AID, "success")})
    store.threads.update({"t1": {"assistant_id": AID, "owner": "alice"},
                          "t2": {"assistant_id": AID, "owner": "bob"}})
    await service.delete(ALICE, AID, delete_threads=True)
    assert runs.cancelled == [(["r1"], "interrupt")]
    assert graphs.dropped == ["t1"] and list(store.threads) == ["t2"]
    thread_calls = [c for c in auth.calls if c[0] == "threads"]
    assert [(c[1], c[3]["thread_id"]) for c in thread_calls] == [("delete", "t1"),
                                                                 ("delete", "t2")]


async def test_search_count_and_system_assistants() -> None:
    service, store, _, _, _ = make()
    await store.create(NewAssistant(
        assistant_id=default_assistant_id("agent"), graph_id="agent", name="agent",
        description=None, config={}, context={}, metadata={"created_by": "system"}))
    await create(service, ALICE, AID)
    await create(service, BOB, "00000000-0000-4000-8000-000000000002")

    async def ids(caller: Caller) -> list[str]:
        rows, _ = await service.search(caller, graph_id=None, name=None, metadata=None,
                                       limit=10, offset=0, sort_by="assistant_id",
                                       sort_order="asc", select=["assistant_id"])
        return [r["assistant_id"] for r in rows]

    assert await ids(ALICE) == [AID]
    assert len(await ids(ADMIN)) == 3
    assert await service.count(ALICE, graph_id=None, name=None, metadata=None) == 1
    with pytest.raises(NotFound):  # the filter hides system assistants here too
        await service.get(ALICE, "agent")
    assert (await service.get(ADMIN, "agent"))["name"] == "agent"
    with pytest.raises(NotFound, match="Graph 'nope'"):
        await service.count(ADMIN, graph_id="nope", name=None, metadata=None)
