"""/admin/* in-process (spec operations.md §3-§5): the token rules, the shapes, the
validation, and maintenance refusing run creation on every run-creating endpoint."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest

from aegra import logs

TOKEN = "s3cret-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RUN = {"assistant_id": "agent", "input": {"x": 1}}
ENDPOINTS = [("GET", "/admin/stats", None), ("GET", "/admin/maintenance", None),
             ("POST", "/admin/maintenance", {"enabled": True}),
             ("GET", "/admin/log-level", None), ("PUT", "/admin/log-level", {"level": "DEBUG"})]


@pytest.fixture
def restore_log_level() -> Any:
    before = logs.level()
    yield
    logs.set_level(before)


async def admin_api(make_api: Any, **kwargs: Any) -> Any:
    return await make_api(env={"AEGRA_ADMIN_TOKEN": TOKEN}, **kwargs)


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
async def test_without_a_token_configured_admin_is_404(make_api: Any, method: str, path: str,
                                                       body: Any) -> None:
    api = await make_api()
    status, answer = await api.call(method, path, json=body, headers=AUTH)
    assert status == 404
    assert "AEGRA_ADMIN_TOKEN" in answer["detail"]
    assert (await api.call("GET", "/threads/x/runs"))[0] == 404  # unrelated, unchanged


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
async def test_a_missing_or_wrong_token_is_401_and_has_no_effect(
        make_api: Any, restore_log_level: Any, method: str, path: str, body: Any) -> None:
    api = await admin_api(make_api)
    level = logs.level()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                    {"Authorization": f"Basic {TOKEN}"}, {"Authorization": f"Bearer {TOKEN}x"}):
        response = await api.client.open(path, method=method, headers=headers,
                                         **({} if body is None else {"json": body}))
        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert logs.level() == level
    assert await api.call("GET", "/admin/maintenance", headers=AUTH) == (200, {"enabled": False})


async def test_admin_is_outside_the_custom_auth_handler(make_api: Any) -> None:
    # With custom auth on, the admin token alone opens /admin/* (no user credential).
    api = await admin_api(make_api, owner_auth=True)
    assert (await api.call("GET", "/admin/stats", headers=AUTH))[0] == 200
    assert (await api.call("GET", "/admin/stats", user="alice"))[0] == 401
    assert (await api.call("GET", "/threads/x", headers=AUTH))[0] == 401  # not a user


async def test_stats_shape_and_counts(make_api: Any) -> None:
    api = await admin_api(make_api)
    status, empty = await api.call("GET", "/admin/stats", headers=AUTH)
    assert status == 200
    assert empty["runs_by_status"] == {"pending": 0, "running": 0, "success": 0, "error": 0}
    assert (empty["active_runs"], empty["pending_runs"]) == (0, 0)
    assert empty["workers"] == {"count": 3, "capacity": 30, "capacity_floor": 30,
                                "capacity_max": 300, "busy": 0}
    assert empty["crons"] == {"enabled": 0, "due": 0}
    assert empty["instance"]["id"] and empty["instance"]["version"] == "test"
    assert empty["instance"]["uptime_seconds"] >= 0
    for _ in range(2):
        assert (await api.call("POST", "/runs", json=RUN))[0] == 200
    status, cron = await api.call("POST", "/runs/crons", json={**RUN, "schedule": "0 0 * * *"})
    assert status == 200, cron
    _, stats = await api.call("GET", "/admin/stats", headers=AUTH)
    assert stats["pending_runs"] == stats["runs_by_status"]["pending"] == 3  # + cron's first
    assert stats["crons"] == {"enabled": 1, "due": 0}
    assert all(isinstance(n, int) and n >= 0 for n in stats["runs_by_status"].values())


async def test_maintenance_refuses_every_run_creation_and_creates_nothing(
        make_api: Any) -> None:
    api = await admin_api(make_api)
    _, thread = await api.call("POST", "/threads", json={})
    thread_id = thread["thread_id"]
    status, answer = await api.call("POST", "/admin/maintenance", json={"enabled": True},
                                    headers=AUTH)
    assert (status, answer["enabled"]) == (200, True)
    assert await api.call("GET", "/admin/maintenance", headers=AUTH) == (200, {"enabled": True})
    for path in (f"/threads/{thread_id}/runs", f"/threads/{thread_id}/runs/wait",
                 f"/threads/{thread_id}/runs/stream", "/runs", "/runs/wait", "/runs/stream"):
        response = await api.client.post(path, json=RUN)
        assert response.status_code == 503, path
        assert int(response.headers["Retry-After"]) >= 1
        assert "maintenance" in (await response.get_json())["detail"]
    status, refused = await api.call("POST", "/runs/crons",
                                     json={**RUN, "schedule": "0 0 * * *"})
    assert status == 503 and "maintenance" in refused["detail"]  # its first run is a run
    assert (await api.call("POST", "/runs/crons/search", json={}))[1] == []
    assert (await api.call("GET", f"/threads/{thread_id}/runs"))[1] == []
    assert (await api.call("GET", "/admin/stats", headers=AUTH))[1]["pending_runs"] == 0
    assert (await api.call("GET", f"/threads/{thread_id}"))[0] == 200  # reads unaffected
    assert (await api.call("POST", "/threads/search", json={}))[0] == 200
    assert (await api.call("POST", "/admin/maintenance", json={"enabled": False},
                           headers=AUTH))[0] == 200
    assert (await api.call("POST", "/runs", json=RUN))[0] == 200


@pytest.mark.parametrize("body", [{}, {"enabled": "maybe"}, {"enabled": None}, [True]])
async def test_maintenance_body_is_validated(make_api: Any, body: Any) -> None:
    api = await admin_api(make_api)
    status, answer = await api.call("POST", "/admin/maintenance", json=body, headers=AUTH)
    assert status == 422, answer
    assert answer["field"] in ("enabled", "body")
    assert await api.call("GET", "/admin/maintenance", headers=AUTH) == (200, {"enabled": False})


async def test_log_level_applies_at_once(make_api: Any, restore_log_level: Any) -> None:
    api = await admin_api(make_api)
    assert await api.call("PUT", "/admin/log-level", json={"level": "DEBUG"},
                          headers=AUTH) == (200, {"level": "DEBUG"})
    assert logging.getLogger().isEnabledFor(logging.DEBUG)
    assert await api.call("GET", "/admin/log-level", headers=AUTH) == (200, {"level": "DEBUG"})
    assert await api.call("PUT", "/admin/log-level", json={"level": "warning"},
                          headers=AUTH) == (200, {"level": "WARNING"})
    assert not logging.getLogger().isEnabledFor(logging.INFO)


@pytest.mark.parametrize("body", [{"level": "LOUD"}, {"level": 10}, {}])
async def test_an_unknown_log_level_is_422_naming_level(make_api: Any, restore_log_level: Any,
                                                        body: Any) -> None:
    api = await admin_api(make_api)
    before = logs.level()
    status, answer = await api.call("PUT", "/admin/log-level", json=body, headers=AUTH)
    assert (status, answer["field"]) == (422, "level"), answer
    assert logs.level() == before


async def test_stats_run_ids_are_never_needed(make_api: Any) -> None:
    api = await admin_api(make_api)
    assert (await api.call("GET", f"/admin/{uuid.uuid4()}", headers=AUTH))[0] == 404
