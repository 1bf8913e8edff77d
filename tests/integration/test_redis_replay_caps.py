"""Ring 2: the Redis broker's replay buffer cap (events and bytes) on a real Redis."""

from __future__ import annotations

import json
import uuid

import redis.asyncio as aioredis
import trio

from aegra.adapters import aio
from aegra.adapters.redis.broker import RedisBroker, keys, size_key
from aegra.domain.replay import DROPPED


async def _client(url):
    @aio.aio
    async def make():
        return aioredis.Redis.from_url(url, socket_connect_timeout=1)
    return await make()


async def _emit(producer, payloads):
    async def go():
        for data in payloads:
            producer.emit("custom", data)
        await producer.aclose()
    await aio.call(go)


async def _events(broker, run_id, after_seq):
    sub = await broker.subscribe(run_id, after_seq)
    out = []
    with trio.fail_after(10):
        async for event in sub:
            out.append(event)
    await sub.aclose()
    return out


async def _open(client, **caps):
    broker = RedisBroker(client, retention_s=60, **caps)
    await broker.open()
    with trio.fail_after(5):
        while not broker.healthy:  # noqa: ASYNC110  a flag the pub/sub reader sets
            await trio.sleep(0.01)
    return broker


async def test_event_cap_trims_the_list_and_late_joiners_get_a_notice(redis_url):
    run_id = f"cap-{uuid.uuid4().hex[:8]}"
    async with aio.open_loop():
        client = await _client(redis_url)
        broker = await _open(client, max_events=3)
        await _emit(broker.producer(run_id), [b'{"i":%d}' % i for i in range(1, 8)])
        await broker.finish(run_id, {"status": "success"})
        assert await aio.call(client.llen, keys(run_id)[1]) == 3
        late = await _events(broker, run_id, 0)
        assert [(e.seq, e.name) for e in late] == [(4, DROPPED), (5, "custom"),
                                                   (6, "custom"), (7, "custom")]
        notice = json.loads(late[0].frame.split(b"\ndata: ")[1].split(b"\n")[0])
        assert notice == {"dropped": 4, "first_seq": 5}
        after = await _events(broker, run_id, 5)
        assert [e.seq for e in after] == [6, 7]  # within what is kept: no notice
        frames, done, dropped = await broker.replay_counted(run_id, 1 << 62)
        assert (frames, done, dropped) == ([], True, 4)  # wait_done's "nothing" read
        await broker.close()
        await aio.call(client.aclose)


async def test_byte_cap_keeps_the_size_key_in_step(redis_url):
    run_id = f"bytes-{uuid.uuid4().hex[:8]}"
    async with aio.open_loop():
        client = await _client(redis_url)
        broker = await _open(client, max_bytes=300)
        await _emit(broker.producer(run_id), [b'"' + b"x" * 80 + b'"'] * 6)
        frames = await aio.call(client.lrange, keys(run_id)[1], 0, -1)
        size = int(await aio.call(client.get, size_key(run_id)))
        assert size == sum(len(f) for f in frames) <= 300
        assert 1 <= len(frames) < 6
        events = await _events_until_done(broker, run_id)
        assert events[0].name == DROPPED and events[0].seq == 6 - len(frames)
        assert [e.seq for e in events[1:]] == list(range(7 - len(frames), 7))
        await broker.close()
        await aio.call(client.aclose)


async def _events_until_done(broker, run_id):
    await broker.finish(run_id, None)
    return await _events(broker, run_id, 0)
