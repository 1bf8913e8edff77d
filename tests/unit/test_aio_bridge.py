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
