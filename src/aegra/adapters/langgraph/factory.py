"""Graph factories: how LangGraph Platform calls them, made Trio-side.

A factory takes nothing, a ``RunnableConfig``, a ``ServerRuntime`` (told apart by its
annotation), or both (passed by keyword, so order does not matter); this mirrors
``langgraph_api._factory_utils``. It may be sync or ``async def`` and may return a graph,
a coroutine, or a (sync or async) context manager. ``async def`` factories and async
context managers run on the asyncio loop through ``aegra.adapters.aio``; an async context
manager is entered *and exited in one asyncio task* (``hold``), because resources such as
MCP sessions built on anyio task groups refuse to be closed from another task.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, get_args, get_origin

import trio
from langchain_core.runnables.config import RunnableConfig, ensure_config
from langgraph.store.base import BaseStore
from langgraph_sdk.runtime import ServerRuntime, _ExecutionRuntime, _ReadRuntime

from aegra.adapters import aio

_RUNTIME_CLASSES = (_ExecutionRuntime, _ReadRuntime)
# Lets factories annotate with names imported only under TYPE_CHECKING.
_LOCALNS = {"ServerRuntime": ServerRuntime, "RunnableConfig": RunnableConfig,
            "Config": RunnableConfig}
Kwargs = Callable[[dict[str, Any], Any], dict[str, Any]]


def _is_runtime(annotation: object) -> bool:
    if annotation is inspect.Parameter.empty:
        return False
    if annotation is ServerRuntime:
        return True
    if isinstance(annotation, type):
        return issubclass(annotation, _RUNTIME_CLASSES)
    origin = get_origin(annotation)
    if origin is ServerRuntime:
        return True
    args = get_args(annotation)
    return origin is not None and bool(args) and _is_runtime(args[0])


def classify(fn: Callable[..., Any]) -> Kwargs:
    """How to call ``fn``: ``(config, runtime) -> kwargs``. TypeError for other shapes."""
    params = list(inspect.signature(fn).parameters.values())
    try:
        hints = typing.get_type_hints(fn, localns=_LOCALNS)
    except Exception:  # noqa: BLE001  unresolvable annotations: fall back to the raw ones
        hints = {}
    runtime_at = [i for i, p in enumerate(params) if _is_runtime(hints.get(p.name, p.annotation))]
    names = [p.name for p in params]
    if not params:
        return lambda config, runtime: {}
    if len(params) == 1:
        if runtime_at:
            return lambda config, runtime: {names[0]: runtime}
        return lambda config, runtime: {names[0]: config}
    if len(params) == 2:
        # Unannotated pairs are read as (config, runtime), the documented order.
        rt = runtime_at[0] if len(runtime_at) == 1 else 1
        return lambda config, runtime: {names[rt]: runtime, names[1 - rt]: config}
    raise TypeError(
        f"graph factory {getattr(fn, '__name__', fn)}({', '.join(names)}) must take (), "
        "(config), (runtime: ServerRuntime) or (config, runtime: ServerRuntime)")


def factory_config(config: dict[str, Any] | None) -> dict[str, Any]:
    """A full RunnableConfig; the caller's dict is never mutated."""
    config = dict(config or {})
    config["configurable"] = dict(config.get("configurable") or {})
    return dict(ensure_config(config))  # type: ignore[arg-type]


def server_runtime(access: str, store: BaseStore | None, context: object = None
                   ) -> ServerRuntime[Any]:
    """What the platform passes as ``ServerRuntime``: ``context`` only when executing."""
    if access == "threads.create_run":
        return _ExecutionRuntime(access_context=access, user=None, store=store,  # type: ignore[arg-type]
                                 context=context)
    return _ReadRuntime(access_context=access, user=None, store=store)  # type: ignore[arg-type]


async def call(fn: Callable[..., object], kwargs: dict[str, Any]) -> object:
    """Call a factory; ``async def`` ones run on the asyncio loop."""
    if inspect.iscoroutinefunction(fn):
        return await aio.call(fn, **kwargs)
    return fn(**kwargs)


@asynccontextmanager
async def materialize(value: object) -> AsyncIterator[Any]:
    """The object a factory's return value stands for, for as long as it is valid."""
    if hasattr(value, "__aenter__") and hasattr(value, "__aexit__"):
        async with hold(value) as inner:
            yield inner
    elif hasattr(value, "__enter__") and hasattr(value, "__exit__"):
        with value as inner:
            yield inner
    elif inspect.iscoroutine(value):
        async def _await() -> object:
            return await value
        yield await aio.call(_await)
    else:
        yield value


def _single_leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


@asynccontextmanager
async def hold(cm: AbstractAsyncContextManager[object]) -> AsyncIterator[Any]:
    """Enter an asyncio context manager and keep its asyncio task alive until we exit.

    The nursery here is an implementation detail, so a single error (from the factory or
    from the caller's body) comes out bare rather than wrapped in an exception group.
    """
    release = trio.Event()

    async def runner(*, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        async def hand_over(value: object) -> None:  # Trio side, called from the asyncio task
            task_status.started(value)
            await release.wait()

        async def body() -> None:  # asyncio side: enter, hand over, wait, exit
            async with cm as value:
                await aio.trio_as_aio(hand_over)(value)

        await aio.call(body)

    try:
        async with trio.open_nursery() as nursery:
            value = await nursery.start(runner)
            try:
                yield value
            finally:
                release.set()
    except BaseExceptionGroup as group:
        leaf = _single_leaf(group)
        if leaf is group:
            raise
        raise leaf from None
