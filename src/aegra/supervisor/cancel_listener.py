"""Cancel listener actor: cross-instance cancels reach the run's local CancelScope.

Owns the subscription to the cancel bus. Calls ``started()`` after its first attempt to
subscribe, whether or not Redis answered: a Redis outage must not hold up or crash the
instance (the heartbeater delivers persisted cancel requests meanwhile). After every
(re)subscription it re-reads the cancel requests persisted in PostgreSQL for runs this
instance executes, so a message published while it was away is not missed. Cancelled:
unsubscribes (bounded) and returns. Restartable.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import NoReturn

import trio

from aegra import logs
from aegra.domain.errors import StoreUnavailable
from aegra.domain.ports import CancelBus, CancelHandle
from aegra.runtime.registry import RunRegistry

log = logs.get_logger("aegra.cancel")


async def run_cancel_listener(
    bus: CancelBus,
    registry: RunRegistry,
    reread: Callable[[], Awaitable[list[tuple[str, str]]]],
    *,
    retry_s: float = 2.0,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    resync = trio.Event()

    def on_cancel(run_id: str, action: str) -> None:
        if registry.cancel(run_id, action):
            log.info("run.cancel_received", run_id=run_id, action=action)

    def on_resync() -> None:
        resync.set()

    sink: CancelHandle | None = None
    started = False
    try:
        while True:
            if sink is None:
                try:
                    sink = await bus.listen(on_cancel, on_resync)
                    resync.set()  # read what was persisted before we listened
                except StoreUnavailable as exc:  # the bus maps its library's errors
                    log.warning("cancel.subscribe_failed", error=exc.message, retry_s=retry_s)
            if not started:
                started = True
                task_status.started()
            if sink is None:
                await trio.sleep(retry_s)
                continue
            await resync.wait()
            resync = trio.Event()
            for run_id, action in await reread():
                on_cancel(run_id, action)
    finally:
        if sink is not None:
            with trio.move_on_after(2, shield=True):
                await bus.stop(sink)
