"""Operations units: the admin token is a masked secret; maintenance skips cron
occurrences without catching them up."""

from __future__ import annotations

import datetime as dt
from typing import Any

import trio

from aegra import config
from aegra.domain import crons
from aegra.services.admin import Maintenance


def test_the_admin_token_comes_from_the_environment_and_is_masked() -> None:
    loaded = config.load(None, {"AEGRA_ADMIN_TOKEN": "hunter2-token"})
    assert loaded.config.auth.admin_token == "hunter2-token"
    rows = {name: (shown, source) for name, shown, source in loaded.describe()}
    assert rows["auth.admin_token"] == ("****", "env AEGRA_ADMIN_TOKEN")
    assert "hunter2" not in repr(loaded.describe())
    assert config.load(None, {}).config.auth.admin_token == ""


def test_maintenance_skips_to_the_next_occurrence_after_now() -> None:
    now = dt.datetime(2026, 12, 4, 12, 0, 30, tzinfo=dt.UTC)
    missed = now - dt.timedelta(minutes=7, seconds=30)  # several occurrences behind
    row = {"next_run_date": missed, "db_now": now, "end_time": None,
           "schedule": "*/1 * * * *", "timezone": None}
    firing = crons.skip(row, why="maintenance mode")
    assert firing.run is None and firing.why == "maintenance mode"
    assert firing.next_run_date == dt.datetime(2026, 12, 4, 12, 1, tzinfo=dt.UTC)
    ended = crons.skip({**row, "end_time": now}, why="maintenance mode")
    assert ended.next_run_date is None  # the next occurrence is past end_time


class _CountingStore:
    """An ``AdminStore`` whose maintenance setting can be changed behind the cache's back
    (as another instance does) and whose reads can fail (a database outage)."""

    def __init__(self) -> None:
        self.value: object = None
        self.reads = 0
        self.failing = False

    async def setting(self, key: str) -> object:
        self.reads += 1
        if self.failing:
            raise OSError("database unreachable")
        return self.value

    async def set_setting(self, key: str, value: object) -> None:
        self.value = value


async def test_maintenance_is_cached_for_the_refresh_interval(autojump_clock: Any) -> None:
    store = _CountingStore()
    gate = Maintenance(store, refresh_s=1.0)  # type: ignore[arg-type]
    assert await gate.on() is False and store.reads == 1
    store.value = {"enabled": True}  # another instance switched it on
    assert await gate.on() is False and store.reads == 1  # cached
    await trio.sleep(1.0)
    assert await gate.on() is True and store.reads == 2
    store.failing = True
    await trio.sleep(1.0)
    assert await gate.on() is True and store.reads == 3  # a failed read keeps the value
    store.failing = False
    await gate.set(False)  # this instance's own switch applies here at once
    assert await gate.on() is False and store.reads == 3
    assert store.value == {"enabled": False}
