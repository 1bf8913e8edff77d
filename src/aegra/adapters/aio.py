"""The asyncio bridge: the ONLY module that imports trio_asyncio (docs/architecture.md, Layers).

The supervisor opens one loop for the life of the process (``open_loop``), outermost;
adapters cross into asyncio with ``call`` (one crossing, ~40 µs of CPU) or wrap a whole
coroutine function with ``aio``. Nothing asyncio-shaped is returned to Trio code.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, ParamSpec, TypeVar, TypeVarTuple

import trio
import trio_asyncio  # must be imported before psycopg_pool (docs/architecture.md, Layers)

P = ParamSpec("P")
T = TypeVar("T")
Ts = TypeVarTuple("Ts")


@asynccontextmanager
async def open_loop() -> AsyncIterator[None]:
    async with trio_asyncio.open_loop() as loop:
        # trio-asyncio's default handler re-raises into the loop's nursery, so one stray
        # "Task exception was never retrieved" from any library would stop the whole
        # server. A server logs it, as plain asyncio does, and keeps serving.
        loop.set_exception_handler(_log_loop_error)
        _same_thread_callbacks_stay_local(loop)
        _callback_checks_only_in_debug(loop)
        _queued_callbacks_in_batches(loop)
        yield


def _same_thread_callbacks_stay_local(loop: Any) -> None:  # noqa: ANN401  trio_asyncio's untyped loop
    """``call_soon_threadsafe`` from the loop's own thread becomes ``call_soon``.

    trio-asyncio implements it with ``TrioToken.run_sync_soon``: a write to trio's wakeup
    socket and a pass through its system task, for every call. LangGraph's message
    streaming calls it once per token from the loop itself (its callback handler hands
    each chunk to the stream's queue that way), which made it 12% of a streaming server's
    CPU in a py-spy profile. From the loop's thread the plain queue is the same thing,
    without the syscall; calls from other threads (executor results) keep the safe path.
    Set on this loop instance only.
    """
    owner = threading.get_ident()
    threadsafe = loop.call_soon_threadsafe

    def call_soon_threadsafe(callback: Callable[..., object], *args: object, **kwargs: object
                             ) -> object:
        if threading.get_ident() == owner:
            return loop.call_soon(callback, *args, **kwargs)
        return threadsafe(callback, *args, **kwargs)

    loop.call_soon_threadsafe = call_soon_threadsafe


def _callback_checks_only_in_debug(loop: Any) -> None:  # noqa: ANN401  trio_asyncio's untyped loop
    """Check callbacks in asyncio's debug mode only, as asyncio's own loop does.

    asyncio's ``call_soon``/``call_at`` validate the callback (``_check_callback``: not a
    coroutine function, callable) only when the loop is in debug mode; trio-asyncio's
    validate on every call, and ``inspect.iscoroutinefunction`` is not free: 2-5 % of a
    no-op run's CPU in profiles (every asyncio callback of a run passes through it). In
    debug mode (``PYTHONASYNCIODEBUG=1``) the check stays. Set on this loop instance only.
    """
    check = loop._check_callback

    def _check_callback(callback: Callable[..., object], method: str) -> None:
        if loop.get_debug():
            check(callback, method)

    loop._check_callback = _check_callback


# Queued asyncio callbacks run back to back up to this many, then the loop task yields.
CALLBACK_BATCH = 64


def _queued_callbacks_in_batches(loop: Any) -> None:  # noqa: ANN401  trio_asyncio's untyped loop
    """Run queued asyncio callbacks back to back, as asyncio's own loop does.

    trio-asyncio's loop task takes one callback per pass and waits for it under a fresh
    cancel scope carrying the next asyncio timer's deadline, queue empty or not:
    registering and withdrawing that deadline and the channel's checkpoint for every
    callback of every run. Here a pass that finds callbacks queued (or a timer due) takes
    one at once, without the scope; after ``CALLBACK_BATCH`` of them, or when nothing is
    queued, the original pass runs, so the loop task still yields to Trio's tasks at
    least once per batch. Set on this loop instance only.
    """
    one = loop._main_loop_one
    taken = 0

    async def _main_loop_one(no_wait: bool = False) -> None:
        nonlocal taken
        if no_wait:
            return await one(no_wait=True)  # type: ignore[no-any-return]
        if taken < CALLBACK_BATCH:
            try:
                await one(no_wait=True)
            except trio.WouldBlock:
                pass  # nothing queued and no timer due: wait below
            else:
                taken += 1
                return
        taken = 0
        await one()

    loop._main_loop_one = _main_loop_one


def _log_loop_error(loop: object, context: dict[str, Any]) -> None:
    from aegra.logs import get_logger

    exc = context.get("exception")
    get_logger("aegra.asyncio").error(
        "asyncio.unhandled", message=context.get("message"),
        error=repr(exc) if exc else None, exc_info=exc)


def aio(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Decorate an ``async def`` written for asyncio so Trio code can await it."""
    return trio_asyncio.aio_as_trio(fn)  # type: ignore[no-any-return]


async def call(fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run one asyncio coroutine function from Trio."""
    return await trio_asyncio.aio_as_trio(fn)(*args, **kwargs)  # type: ignore[no-any-return]


def trio_as_aio(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Let asyncio code (e.g. a LangGraph node callback) await a Trio function."""
    return trio_asyncio.trio_as_aio(fn)  # type: ignore[no-any-return]


async def cancel_task(task: asyncio.Task[Any]) -> None:
    """Stop a background asyncio task from Trio and wait until it has ended (a reader
    loop at close: it never raises but by being cancelled)."""

    @aio
    async def _cancel() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await _cancel()


async def call_to_the_end(fn: Callable[[*Ts], Awaitable[T]], *args: *Ts,
                          recancel_s: float = 1.0, limit_s: float = 30.0) -> T:
    """Like ``call``, for work that must stop when its Trio scope is cancelled (a run).

    trio-asyncio throws one CancelledError into the asyncio task; asyncio code that
    swallows it keeps running with nobody listening (seen under load: a cancelled run's
    graph ran to completion and the run ended ``success``). So the cancel is repeated
    every ``recancel_s`` until the task has really ended, which also means nothing of
    the run still executes when Trio sees ``Cancelled``; bounded by ``limit_s``.
    """
    task = asyncio.ensure_future(fn(*args), loop=trio_asyncio.current_loop.get())
    done = trio.Event()
    task.add_done_callback(lambda _task: done.set())
    try:
        await done.wait()
    except trio.Cancelled:
        with trio.move_on_after(limit_s, shield=True):
            while not task.done():
                task.cancel()
                with trio.move_on_after(recancel_s):
                    await done.wait()
        raise
    return task.result()

