"""In-memory twin of ``PgAdmin`` (the ``AdminStore`` port), over ``MemoryRuns`` and
``MemoryCrons``: the same counts, and settings in a dict (one "deployment" per process)."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from aegra.adapters.memory.crons import MemoryCrons
from aegra.adapters.memory.run_store import MemoryRuns


class MemoryAdmin:
    def __init__(self, runs: MemoryRuns, crons: MemoryCrons) -> None:
        self.runs = runs
        self.crons = crons
        self._settings: dict[str, Any] = {}

    async def runs_by_status(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for run in self.runs._runs.values():
            status = run.row["status"]
            out[status] = out.get(status, 0) + 1
        return out

    async def cron_counts(self) -> tuple[int, int]:
        now = dt.datetime.now(dt.UTC)
        rows = [cron.row for cron in self.crons._crons.values() if cron.row["enabled"]]
        due = sum(1 for row in rows
                  if row["next_run_date"] is not None and row["next_run_date"] <= now)
        return len(rows), due

    async def setting(self, key: str) -> Any:  # noqa: ANN401  a JSON value
        return copy.deepcopy(self._settings.get(key))

    async def set_setting(self, key: str, value: object) -> None:
        self._settings[key] = copy.deepcopy(value)
