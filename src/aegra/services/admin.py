"""Operations for an operator (spec operations.md §3-§5): stats, maintenance, log level.

The admin token is checked at the HTTP edge (``api/admin.py``); there is no per-user
authorization here: the token holder administers the whole deployment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from aegra import logs
from aegra.domain.admin import LOG_LEVELS, MAINTENANCE_KEY, AdminStore
from aegra.domain.auth import Caller
from aegra.domain.errors import Invalid

log = logs.get_logger("aegra.admin")
REFRESH_S = 1.0  # another instance's switch is seen within this (spec: within 5 s)
LISTED = ("pending", "running", "success", "error")  # always in runs_by_status


class Maintenance:
    """The deployment-wide switch, cached per instance for ``refresh_s``.

    Every run creation and every cron pass asks; one query per ``refresh_s`` at most. A
    failed read keeps the last known value (the store's outage is /health's business;
    run creation then fails on its own write).
    """

    def __init__(self, store: AdminStore, refresh_s: float = REFRESH_S) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self._on = False
        self._read_at: float | None = None
        self._reading = False

    async def on(self) -> bool:
        now = trio.current_time()
        stale = self._read_at is None or now - self._read_at >= self.refresh_s
        if stale and not self._reading:  # one reader; the others take the cached value
            self._reading = True
            try:
                value = await self.store.setting(MAINTENANCE_KEY)
            except Exception as exc:  # keep the last value; see the class docstring
                log.warning("maintenance.read_failed", error=repr(exc))
            else:
                self._on = bool(isinstance(value, dict) and value.get("enabled"))
            finally:
                self._reading = False
                self._read_at = now
        return self._on

    async def set(self, enabled: bool) -> None:
        await self.store.set_setting(MAINTENANCE_KEY, {"enabled": enabled})
        self._on, self._read_at = enabled, trio.current_time()


@dataclass(frozen=True, slots=True)
class Instance:
    """What this process reports about itself."""

    id: str
    version: str
    started_at: float  # trio.current_time() at boot
    worker_count: int
    capacity: Callable[[], int]  # current total slots (adaptive)
    capacity_floor: int
    capacity_max: int
    busy: Callable[[], int]  # runs executing here


class AdminService:
    def __init__(self, store: AdminStore, maintenance: Maintenance, instance: Instance
                 ) -> None:
        self.store = store
        self.maintenance = maintenance
        self.instance = instance

    async def stats(self, caller: Caller) -> dict[str, Any]:
        by_status = dict.fromkeys(LISTED, 0) | await self.store.runs_by_status()
        enabled, due = await self.store.cron_counts()
        me = self.instance
        return {
            "active_runs": by_status["running"],
            "pending_runs": by_status["pending"],
            "runs_by_status": by_status,
            "workers": {"count": me.worker_count, "capacity": me.capacity(),
                        "capacity_floor": me.capacity_floor,
                        "capacity_max": me.capacity_max, "busy": me.busy()},
            "crons": {"enabled": enabled, "due": due},
            "instance": {"id": me.id, "version": me.version,
                         "uptime_seconds": round(trio.current_time() - me.started_at, 3)},
        }

    async def get_maintenance(self, caller: Caller) -> dict[str, Any]:
        return {"enabled": await self.maintenance.on()}

    async def set_maintenance(self, caller: Caller, enabled: bool) -> dict[str, Any]:
        await self.maintenance.set(enabled)
        log.warning("maintenance.switched", enabled=enabled)
        return {"enabled": enabled, "effective_within_s": 5}

    async def get_log_level(self, caller: Caller) -> dict[str, Any]:
        return {"level": logs.level()}

    async def set_log_level(self, caller: Caller, level: str) -> dict[str, Any]:
        if level.upper() not in LOG_LEVELS:
            raise Invalid(f"level must be one of {', '.join(LOG_LEVELS)}", field="level")
        logs.set_level(level.upper())
        log.warning("log_level.changed", to=level.upper())
        return {"level": logs.level()}
