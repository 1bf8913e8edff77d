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


async def test_a_socket_that_never_subscribes_is_let_go(make_api, monkeypatch):
    from quart.testing.connections import WebsocketDisconnectError

    from aegra.api import thread_events_ws

    monkeypatch.setattr(thread_events_ws, "FIRST_FRAME_S", 0.2)
    api = await make_api()
    test_client = api.client.app.test_client()
    async with test_client.websocket("/threads/t/stream/events") as ws:
        first = await ws.receive_json()  # the error envelope, then the close
        assert first["error"] == "invalid_argument" and first["field"] == "method"
        with pytest.raises(WebsocketDisconnectError) as closed:
            await ws.receive()
    assert closed.value.args[0] == 4422
