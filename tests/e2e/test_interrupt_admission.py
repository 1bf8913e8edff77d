"""Interrupt-safe admission (issue #13 item 3) and the thread storage report (item 4),
through langgraph_sdk against real ``aegra serve`` processes.

Two servers start side by side: a default one (the platform's behaviour) with the
two-user owner auth, and one with ``AEGRA_INTERRUPT_ADMISSION=require_resume``.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from tests.e2e.auth_support import TOKENS, auth_project
from tests.e2e.conftest import GRAPHS, base_env, write_project

HEADER = "x-aegra-interrupt-admission"
QUESTION = {"question": "approve launch?"}


def _client(url: str, who: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {TOKENS[who]}"} if who else None
    return get_client(url=url, headers=headers)


async def _interrupted(client: Any) -> tuple[str, str]:
    """A thread paused in ``interrupt()``: (thread id, interrupt id)."""
    tid = (await client.threads.create())["thread_id"]
    out = await client.runs.wait(tid, "hitl", input={"topic": "launch"})
    [pending] = out["__interrupt__"]
    assert pending["value"] == QUESTION
    return tid, pending["id"]


async def _refused(call: Any) -> dict[str, Any]:
    with pytest.raises(httpx.HTTPStatusError) as caught:
        await call
    assert caught.value.response.status_code == 409, caught.value.response.text
    return caught.value.response.json()  # type: ignore[no-any-return]


def _names(body: dict[str, Any], tid: str, iid: str) -> None:
    assert body["interrupts"] == [{"id": iid, "value": QUESTION}]
    assert body["thread_id"] == tid
    assert iid in body["detail"] and HEADER in body["detail"]


async def _strict_server(url: str) -> None:
    client = _client(url)
    tid, iid = await _interrupted(client)
    # A plain run would drop the question: refused on every run-creating call.
    _names(await _refused(client.runs.create(tid, "hitl", input={"topic": "other"})),
           tid, iid)
    _names(await _refused(client.runs.wait(tid, "hitl", input={"topic": "other"})), tid, iid)
    assert (await client.threads.get(tid))["status"] == "interrupted"
    assert await client.runs.list(tid) and len(await client.runs.list(tid)) == 1
    # No input: the node asks again, the question stays.
    again = await client.runs.wait(tid, "hitl")
    assert again["__interrupt__"][0]["value"] == QUESTION
    # The answer, however late, resumes the question it was asked for.
    done = await client.runs.wait(tid, "hitl", command={"resume": "yes"})
    assert done["trail"][-1] == "finish:yes"
    assert (await client.threads.get(tid))["status"] == "idle"
    # The per-request override discards a pending question explicitly.
    tid, _ = await _interrupted(client)
    run = await client.runs.create(tid, "hitl", input={"topic": "new"},
                                   headers={HEADER: "allow"})
    await client.runs.join(tid, run["run_id"])
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "success"


async def _default_server(url: str) -> None:
    alice, bob = _client(url, "alice"), _client(url, "bob")
    tid, iid = await _interrupted(alice)
    before = await alice.http.get(f"/threads/{tid}/storage")
    # The platform's behaviour: a plain run is admitted (and asks its own question).
    run = await alice.runs.create(tid, "hitl", input={"topic": "launch"})
    await alice.runs.join(tid, run["run_id"])
    assert (await alice.runs.get(tid, run["run_id"]))["status"] == "success"
    # One request opts in; a bad value is a 422 naming the header.
    body = await _refused(alice.runs.create(tid, "hitl", input={"topic": "x"},
                                            headers={HEADER: "require_resume"}))
    [pending] = body["interrupts"]
    assert pending["value"] == QUESTION and pending["id"] in body["detail"]
    with pytest.raises(httpx.HTTPStatusError) as bad:
        await alice.runs.create(tid, "hitl", input={}, headers={HEADER: "maybe"})
    assert bad.value.response.status_code == 422
    assert bad.value.response.json()["field"] == HEADER
    # Someone else's thread is not found, never "waiting on an interrupt".
    with pytest.raises(httpx.HTTPStatusError) as hidden:
        await bob.runs.create(tid, "hitl", input={"topic": "x"},
                              headers={HEADER: "require_resume"})
    assert hidden.value.response.status_code == 404
    assert iid not in hidden.value.response.text
    await _storage(alice, bob, tid, before)


async def _storage(alice: Any, bob: Any, tid: str, before: dict[str, Any]) -> None:
    after = await alice.http.get(f"/threads/{tid}/storage")
    assert after["thread_id"] == tid
    for report in (before, after):
        parts = (report["checkpoints"]["bytes"] + report["channel_values"]["bytes"]
                 + report["pending_writes"]["bytes"])
        assert report["total_bytes"] == parts > 0
        channels = report["channel_values"]["by_channel"]
        assert report["channel_values"]["count"] == sum(c["versions"]
                                                        for c in channels.values())
        assert channels["trail"]["versions"] >= 1 and channels["trail"]["bytes"] > 0
    # The second run added checkpoints; its interrupt left pending writes.
    assert after["checkpoints"]["count"] > before["checkpoints"]["count"]
    assert after["total_bytes"] > before["total_bytes"]
    assert after["pending_writes"]["count"] >= 1
    for who, path, status in ((bob, tid, 404), (alice, "00000000-0000-0000-0000-00000000000a",
                                                404), (alice, "not-a-uuid", 422)):
        with pytest.raises(httpx.HTTPStatusError) as refused:
            await who.http.get(f"/threads/{path}/storage")
        assert refused.value.response.status_code == status
        if status == 422:
            assert refused.value.response.json()["field"] == "thread_id"


def test_interrupt_admission_and_storage(start_server: Any, make_database: Any,
                                         migrated_template: str, tmp_path: Path) -> None:
    default_dir, strict_dir = tmp_path / "default", tmp_path / "strict"
    default_dir.mkdir()
    strict_dir.mkdir()
    auth_project(default_dir)
    write_project(strict_dir, {"hitl": f"{GRAPHS / 'hitl.py'}:graph"})
    db_default, db_strict = (make_database(template=migrated_template) for _ in range(2))
    default = start_server(base_env(db_default, AUTH_TYPE="custom"),
                           workdir=default_dir, wait_ready=False)
    strict = start_server(base_env(db_strict, AEGRA_INTERRUPT_ADMISSION="require_resume"),
                          workdir=strict_dir, wait_ready=False)
    default.wait_ready()
    strict.wait_ready()

    async def scenario() -> None:
        await asyncio.gather(_default_server(default.url), _strict_server(strict.url))

    asyncio.run(scenario())
    for server in (default, strict):  # stopped side by side (teardown stops one by one)
        server.signal(signal.SIGTERM)
    for server in (default, strict):
        server.wait(20)
