"""The v2 thread streaming routes: served by default, gone with ``http.disable_runs`` or
``http.disable_event_streaming`` (a backdoor to run creation otherwise), and bad input
refused before anything runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aegra.project import HttpProjectCfg, Project

PATHS = {"/threads/<thread_id>/commands", "/threads/<thread_id>/stream/events"}


def _project(**http: Any) -> Project:
    return Project(root=Path("."), source="", http=HttpProjectCfg(**http))


def _rules(api: Any) -> set[str]:
    return {rule.rule for rule in api.client.app.url_map.iter_rules()}


@pytest.mark.parametrize("flag", ["disable_runs", "disable_event_streaming"])
async def test_routes_go_with_their_flags(make_api, flag):
    assert PATHS <= _rules(await make_api())
    api = await make_api(project=_project(**{flag: True}))
    assert not PATHS & _rules(api)
    status, _ = await api.call("POST", "/threads/t/commands",
                               json={"id": 1, "method": "run.start", "params": {}})
    assert status == 404


async def test_bad_commands_and_filters_name_the_field(make_api):
    api = await make_api()
    status, body = await api.call("POST", "/threads/t/commands",
                                  json={"id": "1", "method": "run.start"})
    assert (status, body["field"], body["type"], body["id"]) == (400, "id", "error", None)
    status, body = await api.call("POST", "/threads/t/commands",
                                  json={"id": 2, "method": "run.start", "params": [1]})
    assert (status, body["field"]) == (400, "params")
    status, body = await api.call("POST", "/threads/t/commands",
                                  json={"id": 3, "method": "input.respond",
                                        "params": {"interrupt_id": "i", "namespace": "x"}})
    assert (status, body["error"]) == (200, "invalid_argument")
    assert "params.namespace" in body["message"]
    status, body = await api.call("POST", "/threads/t/commands",
                                  json={"id": 4, "method": "state.get", "params": {}})
    assert (status, body["error"]) == (200, "not_supported")
    status, body = await api.call("POST", "/threads/t/stream/events",
                                  json={"channels": ["values"], "depth": "deep"})
    assert (status, body["field"]) == (422, "depth")
