"""GET /threads/{id}/stream in-process over the in-memory services: which modes are
accepted (and a 422 naming the parameter for the others), what each sends of a run's
events, the run_done marker, and a state_update reaching a joined stream through the
broker's thread channel. No worker runs here: a test writes the run's events into the
broker itself, as a worker would."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urlencode

import trio
import trio.testing

RUN = {"assistant_id": "agent", "input": {}}


def parse(body: bytes) -> list[tuple[str, Any, str | None]]:
    """(event, data, id) of each SSE frame, comments skipped."""
    out = []
    for block in body.decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n")
                      if line and not line.startswith(":"))
        if "event" in fields:
            out.append((fields["event"], json.loads(fields["data"]), fields.get("id")))
    return out


async def stream(api: Any, thread_id: str, **query: str) -> list[tuple[str, Any, str | None]]:
    response = await api.client.get(f"/threads/{thread_id}/stream", query_string=query)
    assert response.status_code == 200, await response.get_data()
    # The query stays in Location: a client reconnecting there keeps its modes.
    assert response.headers["Location"] == f"/threads/{thread_id}/stream" + (
        f"?{urlencode(query)}" if query else "")
    return parse(await response.get_data())


async def test_unknown_modes_are_422_naming_the_parameter(make_api: Any) -> None:
    api = await make_api()
    status, thread = await api.call("POST", "/threads", json={})
    thread_id = thread["thread_id"]
    for query, field in (({"stream_mode": "nope"}, "stream_mode"),
                         ({"stream_mode": '["values", "nope"]'}, "stream_mode"),
                         ({"stream_modes": "lifecycle,nope"}, "stream_modes")):
        status, body = await api.call("GET", f"/threads/{thread_id}/stream", query=query)
        assert (status, body["field"]) == (422, field), query
        assert "nope" in body["detail"]
    status, _ = await api.call("GET", f"/threads/{uuid.uuid4()}/stream",
                               query={"stream_mode": "values"})
    assert status == 404


async def test_each_mode_sends_its_share_of_a_run_then_the_marker(make_api: Any) -> None:
    api = await make_api()
    status, thread = await api.call("POST", "/threads", json={})
    thread_id = thread["thread_id"]
    status, run = await api.call("POST", f"/threads/{thread_id}/runs", json=RUN)
    run_id = run["run_id"]
    for name in ("metadata", "values", "updates", "values|sub:1", "custom"):
        api.broker.emit(run_id, name, b'{"run_id": "%s"}' % run_id.encode())
    await api.broker.finish(run_id, {"status": "success", "values": {}, "error": None},
                            (("end", b'{"status": "success"}'),))
    done = ("metadata", {"status": "run_done", "run_id": run_id}, None)

    everything = await stream(api, thread_id)  # run_modes, the default
    assert [e for e, _, _ in everything] == ["metadata", "values", "updates",
                                             "values|sub:1", "custom", "end", "metadata"]
    assert everything[-1] == done
    assert [i for _, _, i in everything[:-1]] == [f"{run_id}_event_{n}" for n in range(1, 7)]
    assert await stream(api, thread_id, stream_mode="run_modes") == everything

    values = await stream(api, thread_id, stream_mode="values")
    assert [e for e, _, _ in values] == ["metadata", "values", "values|sub:1", "end",
                                         "metadata"]
    both = await stream(api, thread_id, stream_mode='["updates", "custom"]')
    assert [e for e, _, _ in both] == ["metadata", "updates", "custom", "end", "metadata"]
    lifecycle = await stream(api, thread_id, stream_modes="lifecycle")
    assert [e for e, _, _ in lifecycle] == ["metadata", "end", "metadata"]
    assert lifecycle[-1] == done
    # Resuming inside the run: what follows the id, then the marker.
    response = await api.client.get(f"/threads/{thread_id}/stream",
                                    headers={"Last-Event-ID": f"{run_id}_event_4"})
    assert [e for e, _, _ in parse(await response.get_data())] == ["custom", "end",
                                                                   "metadata"]


async def test_a_state_update_reaches_a_joined_stream_until_it_idles(make_api: Any
                                                                      ) -> None:
    api = await make_api(env={"AEGRA__STREAM__THREAD_IDLE_S": "0.5"})
    status, thread = await api.call("POST", "/threads", json={})
    thread_id = thread["thread_id"]
    update = b'{"state": {"values": {"n": 1}}, "thread_id": "%s"}' % thread_id.encode()
    with trio.fail_after(10):
        async with api.client.request(f"/threads/{thread_id}/stream",
                                      query_string={"stream_mode": "state_update"}) as conn:
            await conn.send_complete()
            await trio.testing.wait_all_tasks_blocked()
            assert thread_id in api.broker._thread_sinks  # listening: nothing sent yet
            await api.broker.publish_thread(thread_id, "state_update", update)
            body = await conn.receive()
            assert parse(body) == [("state_update", json.loads(update), None)]
            # Then nothing for thread_idle_s: the stream ends by itself.
    assert parse(bytes(conn.response_data)) == []
    assert thread_id not in api.broker._thread_sinks  # the listener went with the stream
