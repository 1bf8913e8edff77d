"""Replay buffers capped per run (events and bytes): live subscribers get everything,
late joiners get the newest events after one ``events_dropped`` notice."""

from __future__ import annotations

import json

import trio
import trio.testing

from aegra.adapters.memory.broker import MemoryBroker
from aegra.api.sse import run_events
from aegra.domain.replay import DROPPED, dropped_notice


async def _drain(sub):
    out = []
    async for event in sub:
        out.append(event)
    return out


def _data(event):
    return json.loads(event.frame.split(b"\ndata: ", 1)[1].split(b"\n", 1)[0])


async def test_event_cap_keeps_the_newest_and_tells_late_joiners():
    broker = MemoryBroker(max_events=3)
    live = await broker.subscribe("r", 0)
    for i in range(1, 8):
        broker.emit("r", "values", b'{"i":%d}' % i)
    await broker.finish("r", {"status": "success"})
    assert [e.seq for e in await _drain(live)] == list(range(1, 8))  # live: everything

    late = await _drain(await broker.subscribe("r", 0))
    assert [(e.seq, e.name) for e in late] == [(4, DROPPED), (5, "values"), (6, "values"),
                                               (7, "values")]
    assert _data(late[0]) == {"dropped": 4, "first_seq": 5}
    assert b"\nid: r_event_4\n" in late[0].frame  # resuming from it starts at the kept ones
    resumed = await _drain(await broker.subscribe("r", 2))
    assert resumed[0].name == DROPPED and _data(resumed[0])["dropped"] == 2
    kept = await _drain(await broker.subscribe("r", 4))
    assert [e.seq for e in kept] == [5, 6, 7]  # nothing it asked for was dropped: no notice


async def test_byte_cap_drops_oldest_but_always_keeps_the_newest_event():
    broker = MemoryBroker(max_bytes=200)
    for _ in range(5):
        broker.emit("b", "custom", b'"' + b"x" * 60 + b'"')
    broker.emit("b", "custom", b'"' + b"y" * 500 + b'"')  # alone over the cap
    await broker.finish("b", None)
    events = await _drain(await broker.subscribe("b", 0))
    assert [(e.seq, e.name) for e in events] == [(5, DROPPED), (6, "custom")]
    assert _data(events[0]) == {"dropped": 5, "first_seq": 6}
    broker.emit("c", "custom", b'"' + b"x" * 40 + b'"')
    broker.emit("c", "custom", b'"' + b"x" * 40 + b'"')
    both = await _drain(await _finished(broker, "c"))
    assert [e.seq for e in both] == [1, 2]  # under the cap nothing is dropped


async def _finished(broker, run_id):
    await broker.finish(run_id, None)
    return await broker.subscribe(run_id, 0)


def test_no_notice_when_nothing_was_dropped():
    assert dropped_notice("r", 0, 1) is None
    assert dropped_notice("r", 9, 5) is None
    notice = dropped_notice("r", 1, 5)
    assert notice is not None and notice.seq == 4


async def test_a_join_with_a_mode_subset_still_gets_the_notice(autojump_clock):
    broker = MemoryBroker(max_events=2)
    for name in ("metadata", "values", "updates", "values", "updates"):
        broker.emit("m", name, b"{}")
    chunks: list[bytes] = []

    async def consume() -> None:
        async for chunk in run_events(lambda: broker.subscribe("m", 0), keepalive_s=5,
                                      modes={"updates"}, run_id="m"):
            chunks.append(chunk)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        await trio.testing.wait_all_tasks_blocked()
        broker.emit("m", "end", b"{}")
        await broker.finish("m", None)
    names = [line for chunk in chunks for line in chunk.split(b"\n")
             if line.startswith(b"event: ")]
    assert names == [b"event: events_dropped", b"event: updates", b"event: end"]
