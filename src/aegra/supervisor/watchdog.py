"""Loop-lag watchdog: measures how late Trio wakes up, pings systemd while healthy.

Owns: the loop-lag gauge and the WATCHDOG=1 pings. Calls ``started()`` after its first
tick. When the loop is blocked (a sync call in an ``async def`` node, say) it cannot ping;
when it wakes up it measures the lag, logs it with the runs then executing, and stops
pinging while the lag exceeds the watchdog interval, so systemd restarts a process that
keeps stalling. Cancelled: returns at once. Restartable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

import trio

from aegra.logs import get_logger
from aegra.supervisor.sdnotify import Notifier

log = get_logger("aegra.watchdog")


async def run_watchdog(
    notifier: Notifier,
    watchdog_s: float | None,
    on_lag: Callable[[float], None],
    running_ids: Callable[[], list[str]],
    ready: Callable[[], bool] = lambda: True,
    *,
    warn_lag_s: float = 1.0,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    ping_every = watchdog_s / 2 if watchdog_s else None
    tick = min(0.5, ping_every / 2) if ping_every else 0.5
    last_ping = -float("inf")
    started = False
    while True:
        before = trio.current_time()
        await trio.sleep(tick)
        now = trio.current_time()
        lag = max(0.0, now - before - tick)
        on_lag(lag)
        if lag > warn_lag_s:
            log.warning("loop.lag", lag_s=round(lag, 3), running_runs=running_ids())
        # systemd arms the watchdog at READY=1; pings before it would only be noise.
        if ping_every is not None and now - last_ping >= ping_every and ready():
            if watchdog_s is not None and lag < watchdog_s:
                notifier.notify("WATCHDOG=1")
                last_ping = now
        if not started:
            started = True
            task_status.started()
