"""aegra.json ``http.disable_*`` (the route groups are gone: 404, as on the platform),
``configurable_headers`` on the run endpoints, and the platform's default multitask
strategy (``enqueue``) for a run that names none."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aegra.domain.headers import HeaderRules
from aegra.project import HttpProjectCfg, Project

RUN = {"assistant_id": "agent", "input": {"x": 1}}


def _project(**http: Any) -> Project:
    return Project(root=Path("."), source="", http=HttpProjectCfg(**http))


GROUPS = {
    "assistants": {"/assistants/search", "/assistants/<assistant_id>"},
    "threads": {"/threads/search", "/threads/<thread_id>/state", "/threads/<thread_id>/stream"},
    "runs": {"/runs", "/runs/batch", "/threads/<thread_id>/runs", "/runs/crons/search",
             "/runs/<run_id>/stream", "/threads/<thread_id>/runs/<run_id>/join"},
    "store": {"/store/items", "/store/namespaces"},
    "meta": {"/", "/info", "/openapi.json", "/docs", "/metrics"},
}
# One request per group, as a client sees a group that is not served.
PROBES = {"assistants": ("POST", "/assistants/search", {}),
          "threads": ("POST", "/threads/search", {}), "runs": ("POST", "/runs", RUN),
          "store": ("POST", "/store/namespaces", {}), "meta": ("GET", "/info", None)}
PROBES_ALWAYS = {"/ok", "/ready", "/health", "/live"}


@pytest.mark.parametrize("group", sorted(GROUPS))
async def test_a_disabled_group_is_404_and_the_rest_is_served(make_api, group):
    api = await make_api(project=_project(**{f"disable_{group}": True}))
    rules = {rule.rule for rule in api.client.app.url_map.iter_rules()}  # type: ignore[attr-defined]
    assert not rules & GROUPS[group]
    for other, paths in GROUPS.items():
        if other != group:
            assert paths <= rules, other
    assert PROBES_ALWAYS <= rules
    method, path, body = PROBES[group]
    assert (await api.call(method, path, json=body))[0] == 404
    full = await make_api()
    assert (await full.call(method, path, json=body))[0] in (200, 204)
    # The probes always answer, so an operator can tell the server started.
    assert await api.call("GET", "/ok") == (200, {"ok": True})
    assert (await api.call("GET", "/live"))[0] == 200


async def test_disabled_routes_leave_the_openapi_document(make_api):
    api = await make_api(project=_project(disable_store=True, disable_assistants=True))
    paths = (await api.call("GET", "/openapi.json"))[1]["paths"]
    assert not [p for p in paths if p.startswith(("/store", "/assistants"))]
    assert "/threads/{thread_id}/runs" in paths


async def test_configurable_headers_go_into_the_run_config(make_api):
    api = await make_api()
    api.services.runs.header_rules = HeaderRules(["x-*"], ["x-secret"])
    headers = {"X-Team": "blue", "X-Secret": "s", "Accept-Language": "fr",
               "X-Api-Key": "k", "X-Request-ID": "r-1"}
    _, thread = await api.call("POST", "/threads", json={})
    tid = thread["thread_id"]
    status, run = await api.call("POST", f"/threads/{tid}/runs", headers=headers, json={
        **RUN, "config": {"configurable": {"x-team": "body", "mine": 1}}})
    assert status == 200
    # The request's id is the run's langgraph_request_id, as on the platform.
    assert run["kwargs"]["config"]["configurable"] == {
        "x-team": "blue", "x-request-id": "r-1", "mine": 1, "langgraph_request_id": "r-1"}
    status, batch = await api.call("POST", "/runs/batch", json=[RUN, RUN],
                                   headers={**headers, "X-Request-ID": "r-2"})
    assert status == 200
    assert [r["kwargs"]["config"]["configurable"] for r in batch] == [
        {"x-team": "blue", "x-request-id": "r-2", "langgraph_request_id": "r-2"}] * 2


async def test_without_rules_only_tracing_headers_are_copied(make_api):
    api = await make_api()
    status, run = await api.call("POST", "/runs", json=RUN, headers={
        "X-Team": "blue", "User-Agent": "ua", "langsmith-trace": "t1"})
    assert status == 200
    configurable = run["kwargs"]["config"]["configurable"]
    assert configurable.pop("langgraph_request_id")  # made up when the client sent none
    assert configurable == {"langsmith-trace": "t1"}
    assert run["kwargs"]["durability"] == "async"  # the platform's default, stated


async def test_a_run_without_a_strategy_is_enqueued_behind_the_current_one(make_api):
    api = await make_api()
    tid = (await api.call("POST", "/threads", json={}))[1]["thread_id"]
    first = (await api.call("POST", f"/threads/{tid}/runs", json=RUN))[1]
    status, second = await api.call("POST", f"/threads/{tid}/runs", json=RUN)
    assert status == 200 and second["multitask_strategy"] == "enqueue"
    assert second["kwargs"]["multitask_strategy"] == "enqueue"
    listed = (await api.call("GET", f"/threads/{tid}/runs"))[1]
    assert [(r["run_id"], r["status"]) for r in listed] == [
        (second["run_id"], "pending"), (first["run_id"], "pending")]
    # Only an explicit reject refuses.
    status, body = await api.call("POST", f"/threads/{tid}/runs",
                                  json={**RUN, "multitask_strategy": "reject"})
    assert status == 409
