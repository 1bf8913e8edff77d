"""The AdminStore contract (operations: stats counts and deployment settings), on the
in-memory twin and on PostgreSQL alike, plus maintenance skipping a due cron through
``fire_due`` without a run and without catch-up."""

from __future__ import annotations

import datetime as dt
from functools import partial
from typing import Any

from aegra.adapters.memory.admin import MemoryAdmin
from aegra.adapters.postgres.admin import PgAdmin
from aegra.adapters.postgres.runs import PgRuns
from aegra.domain import crons
from aegra.domain.admin import MAINTENANCE_KEY
from aegra.domain.crons import NewCron
from aegra.domain.run_rows import NewRun
from aegra.domain.runs import new_run_id
from tests.contract.worlds import (  # noqa: F401  (world_fixture: the fixture "world")
    USER_ASSISTANT,
    World,
    world_fixture,
)


def admin_of(w: World) -> Any:
    if isinstance(w.runs, PgRuns):
        return PgAdmin(w.runs.pg)
    return MemoryAdmin(w.runs, w.crons)


def cron(next_run_date: dt.datetime, *, enabled: bool = True,
         schedule: str = "0 * * * *") -> NewCron:
    return NewCron(cron_id=new_run_id(), assistant_id=USER_ASSISTANT, thread_id=None,
                   user_id="alice", schedule=schedule, timezone=None, end_time=None,
                   enabled=enabled, on_run_completed="keep", payload={"input": {}},
                   metadata={}, next_run_date=next_run_date)


async def test_counts_runs_by_status_and_crons(world: Any) -> None:
    async with world() as w:
        admin = admin_of(w)
        assert await admin.runs_by_status() == {}
        assert await admin.cron_counts() == (0, 0)
        for _ in range(2):
            await w.runs.create(NewRun(thread_id=None, assistant_id=USER_ASSISTANT,
                                       graph_id="agent", params={}, stateless=True))
        now = dt.datetime.now(dt.UTC)
        for when, enabled in ((now - dt.timedelta(minutes=1), True),
                              (now + dt.timedelta(hours=1), True),
                              (now - dt.timedelta(minutes=1), False)):
            await w.crons.create(cron(when, enabled=enabled), None, max_per_user=0)
        assert await admin.runs_by_status() == {"pending": 2}
        assert await admin.cron_counts() == (2, 1)


async def test_settings_round_trip(world: Any) -> None:
    async with world() as w:
        admin = admin_of(w)
        assert await admin.setting(MAINTENANCE_KEY) is None
        await admin.set_setting(MAINTENANCE_KEY, {"enabled": True})
        assert await admin.setting(MAINTENANCE_KEY) == {"enabled": True}
        await admin.set_setting(MAINTENANCE_KEY, {"enabled": False})
        assert await admin.setting(MAINTENANCE_KEY) == {"enabled": False}


async def test_a_skipped_occurrence_makes_no_run_and_jumps_past_now(world: Any) -> None:
    async with world() as w:
        missed = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        new = cron(missed, schedule="* * * * *")  # five occurrences behind
        await w.crons.create(new, None, max_per_user=0)
        fired = await w.crons.fire_due(partial(crons.skip, why="maintenance mode"), 10)
        assert (fired.claimed, fired.created, fired.behind) == (1, [], False)
        assert fired.skipped == [(new.cron_id, "maintenance mode")]
        row = await w.crons.get(new.cron_id)
        assert row["next_run_date"] > dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        assert row["next_run_date"] <= dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
        assert await admin_of(w).runs_by_status() == {}
