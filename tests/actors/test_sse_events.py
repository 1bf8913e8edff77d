"""Ring 1: ``sse.run_events`` over the in-memory broker.

A stream survives quiet periods longer than the keepalive interval: ``run_events`` times
out each wait for the next event to send a keepalive comment, and the subscription's
iterator must survive that cancelled wait (an async generator does not: the cancellation
finishes it, which ended every stream quiet for more than ``keepalive_s`` without its
`end` and, with on_disconnect=cancel, cancelled the run). Events already queued when the
reader wakes go out in one write, in order, filtered by mode.
"""

from __future__ import annotations

import trio
import trio.testing

from aegra.adapters.memory.broker import MemoryBroker
from aegra.api.sse import KEEPALIVE, run_events


async def test_quiet_stream_sends_keepalives_and_then_its_events(autojump_clock):
    broker = MemoryBroker()
    frames: list[bytes] = []
    cancelled: list[bool] = []

    async def on_disconnect() -> None:
        cancelled.append(True)

    async def consume() -> None:
        async for chunk in run_events(lambda: broker.subscribe("r1", 0), keepalive_s=5,
                                      on_disconnect=on_disconnect, run_id="r1"):
            frames.append(chunk)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        await trio.sleep(12)  # two keepalive intervals without an event
        broker.emit("r1", "values", b"{}")
        await trio.sleep(6)
        broker.emit("r1", "end", b'{"status":"success"}')
        await broker.finish("r1", {"status": "success", "values": {}, "error": None})
    names = [f.split(b"\n", 1)[0] for f in frames]
    assert names == [KEEPALIVE.strip(), KEEPALIVE.strip(), b"event: values",
                     KEEPALIVE.strip(), b"event: end"]
    assert cancelled == []  # the stream ended with its run, not as a disconnect


async def test_queued_events_go_out_together_in_order_and_filtered(autojump_clock):
    broker = MemoryBroker()
    chunks: list[bytes] = []

    async def consume() -> None:
        async for chunk in run_events(lambda: broker.subscribe("r2", 0), keepalive_s=5,
                                      modes={"messages-tuple"}, run_id="r2"):
            chunks.append(chunk)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        await trio.testing.wait_all_tasks_blocked()
        for i in range(5):  # queued before the reader runs again
            broker.emit("r2", "messages", b'{"i":%d}' % i)
            broker.emit("r2", "values", b"{}")  # not asked for
        broker.emit("r2", "end", b'{"status":"success"}')
        await broker.finish("r2", {"status": "success", "values": {}, "error": None})
    assert len(chunks) < 6  # batched, not one write per event
    body = b"".join(chunks)
    frames = [f for f in body.split(b"\n\n") if f]
    assert [f.split(b"\n")[1] for f in frames] == [
        *(b'data: {"i":%d}' % i for i in range(5)), b'data: {"status":"success"}']
