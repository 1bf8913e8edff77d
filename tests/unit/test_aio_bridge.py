"""The asyncio bridge's loop: ``call_soon_threadsafe`` from the loop's own thread takes
the plain queue (no trio token, no wakeup-socket write), from any other thread the safe
path; both run their callbacks, same-thread ones in call order."""

from __future__ import annotations

import asyncio
import threading

import trio

from aegra.adapters import aio


async def test_threadsafe_calls_run_from_the_loop_thread_and_from_others():
    async with aio.open_loop():
        async def scenario() -> tuple[list[object], list[object]]:
            loop = asyncio.get_running_loop()
            token = loop._token
            used_token: list[object] = []

            class Recording:  # TrioToken's attributes are read-only: wrap it instead
                def run_sync_soon(self, *args, **kwargs):
                    used_token.append(args)
                    return token.run_sync_soon(*args, **kwargs)

            loop._token = Recording()
            try:
                seen: list[object] = []
                done = asyncio.Event()
                for i in range(5):  # from the loop's thread
                    loop.call_soon_threadsafe(seen.append, i)
                loop.call_soon_threadsafe(done.set)
                await done.wait()
                same_thread_via_token = len(used_token)

                other = asyncio.Event()
                threading.Thread(
                    target=lambda: (loop.call_soon_threadsafe(seen.append, "thread"),
                                    loop.call_soon_threadsafe(other.set))).start()
                await other.wait()
                return seen, [same_thread_via_token, len(used_token)]
            finally:
                loop._token = token

        with trio.fail_after(10):
            seen, via_token = await aio.call(scenario)
    assert seen == [0, 1, 2, 3, 4, "thread"]
    assert via_token[0] == 0  # the loop's own calls never went through the token
    assert via_token[1] >= 2  # another thread's did


async def test_queued_callbacks_run_in_order_and_trio_keeps_its_turn():
    """Queued asyncio callbacks run back to back (no cancel scope per callback), but the
    loop task still yields to Trio at least once per ``CALLBACK_BATCH`` of them: a Trio
    task spinning on checkpoints gets turns all through an asyncio callback storm; timers
    still fire in it."""
    storm = 40 * aio.CALLBACK_BATCH
    trio_turns = 0
    stop = trio.Event()

    async def trio_side() -> None:
        nonlocal trio_turns
        while not stop.is_set():
            trio_turns += 1
            await trio.lowlevel.checkpoint()

    async def asyncio_side() -> tuple[list[int], list[str]]:
        loop = asyncio.get_running_loop()
        seen: list[int] = []
        timers: list[str] = []
        done = asyncio.Event()
        loop.call_later(0, timers.append, "due")
        for i in range(storm):  # all queued at once: a burst like a run's steps
            loop.call_soon(seen.append, i)
        loop.call_soon(done.set)
        await done.wait()
        for _ in range(storm // 4):  # a chain: each step queues the next
            await asyncio.sleep(0)
        return seen, timers

    async with aio.open_loop():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio_side)
            await trio.lowlevel.checkpoint()
            turns_before = trio_turns
            with trio.fail_after(10):
                seen, timers = await aio.call(asyncio_side)
            stop.set()
    assert seen == list(range(storm))
    assert timers == ["due"]
    # One turn per batch at least (the chain adds more); an unbounded batch gives ~0.
    assert trio_turns - turns_before >= storm // aio.CALLBACK_BATCH
