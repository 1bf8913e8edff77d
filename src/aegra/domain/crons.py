"""Cron occurrence maths: validation and next fire times. Pure: no I/O, no clock.

A schedule is a 5-field cron expression (minute hour day-of-month month day-of-week), a
6-field one whose *first* field is seconds (allowed only when the operator says so), or
an ``@daily``-style alias. Its occurrences are wall-clock times in an IANA timezone (UTC
when none is given), returned as UTC instants. croniter only ever sees naive wall-clock
times here; the timezone mapping is ours, because croniter's own aware-datetime iteration
fires a fixed-time job twice on the autumn DST change. The rules:

* spring forward: a wall time that does not exist that day (02:30 in New York on the
  second Sunday of March) fires once, at the instant the gap ends (03:00 EDT); several
  such times collapse into that one firing. Nothing is skipped.
* fall back: a wall time that happens twice (01:30 on the first Sunday of November) fires
  at its first occurrence only, unless the schedule fires every hour (hour field ``*``):
  then the repeated hour is just another hour, so "every 15 minutes" keeps its rhythm in
  real time. Nothing fires twice.

``advance`` holds the catch-up policy the ticker applies (``supervisor/cron.py``);
``plan`` decides one claimed cron's firing and ``cron_run`` builds the run it makes,
as its owner.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from croniter import (  # type: ignore[import-untyped]
    CroniterBadCronError,
    CroniterBadDateError,
    CroniterError,
    croniter,
)

from aegra.domain.auth import user_dict
from aegra.domain.errors import Invalid
from aegra.domain.run_rows import Created, NewRun
from aegra.domain.runs import DEFAULT_MULTITASK

UTC = dt.UTC
MAX_SCHEDULE_LEN = 256
# Enough for any real schedule; a lookback over a DST fold with a per-second schedule
# walks ~3,600 candidates.
_MAX_CANDIDATES = 100_000
ALIASES = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# A fixed instant to try a new schedule from: impossible dates (February 30th) only show
# when croniter iterates.
_PROBE = dt.datetime(2024, 1, 1, tzinfo=UTC)


def zone(name: str | None) -> ZoneInfo:
    """The IANA zone ``name`` (UTC for None), or Invalid naming the ``timezone`` field."""
    if name is None:
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise Invalid(f"invalid field 'timezone': {name!r} is not an IANA timezone "
                      "(for example 'America/New_York')", field="timezone") from None


def is_seconds(expr: str) -> bool:
    return len(expr.split()) == 6


@dataclass(frozen=True)
class Schedule:
    expr: str  # as the client wrote it (stored and returned)
    fields: str  # what croniter parses (aliases expanded)
    seconds: bool  # 6-field, seconds first
    every_hour: bool  # the hour field matches all 24 hours (fall-back rule)
    tz: ZoneInfo

    def next_after(self, after: dt.datetime) -> dt.datetime:
        """The first occurrence strictly after ``after`` (aware), as a UTC instant."""
        local = after.astimezone(self.tz)
        naive = local.replace(tzinfo=None, microsecond=0, fold=0)
        start = naive
        before, later = _offsets(naive, self.tz)
        if local.fold == 0 and before > later:
            # ``after`` is in the first pass of a repeated hour: second-pass instants of
            # earlier wall times are still ahead of it.
            start = naive - (before - later)
        it = croniter(self.fields, start - dt.timedelta(seconds=1),
                      second_at_beginning=self.seconds)
        best: dt.datetime | None = None
        for _ in range(_MAX_CANDIDATES):
            first, second = self._instants(it.get_next(dt.datetime))
            for instant in (first, second):
                if instant is not None and instant > after and (best is None or instant < best):
                    best = instant
            # First-pass instants grow with the wall time, and any second-pass instant of
            # a later wall time comes after this one, so the first hit ends the search.
            if first > after:
                assert best is not None
                return best
        raise Invalid(f"invalid field 'schedule': {self.expr!r} has no next occurrence",
                      field="schedule")

    def _instants(self, wall: dt.datetime) -> tuple[dt.datetime, dt.datetime | None]:
        """UTC instants of one naive wall time: (first, second pass of a repeated hour)."""
        before, later = _offsets(wall, self.tz)
        if before == later:
            return (wall - before).replace(tzinfo=UTC), None
        if before > later:  # fall back: the wall time happens twice
            second = (wall - later).replace(tzinfo=UTC) if self.every_hour else None
            return (wall - before).replace(tzinfo=UTC), second
        # spring forward: the wall time does not exist; fire when the gap ends
        return _gap_end(wall - later, wall - before, self.tz, later), None


def _offsets(wall: dt.datetime, tz: ZoneInfo) -> tuple[dt.timedelta, dt.timedelta]:
    """UTC offsets of a naive wall time before (fold=0) and after (fold=1) a transition."""
    zero = dt.timedelta(0)
    return (wall.replace(tzinfo=tz, fold=0).utcoffset() or zero,
            wall.replace(tzinfo=tz, fold=1).utcoffset() or zero)


def _gap_end(lo: dt.datetime, hi: dt.datetime, tz: ZoneInfo, after_offset: dt.timedelta
             ) -> dt.datetime:
    """First instant (whole second) in [lo, hi] (naive UTC) already on the new offset."""
    lo_s = int(lo.replace(tzinfo=UTC).timestamp())
    hi_s = int(hi.replace(tzinfo=UTC).timestamp())
    while lo_s + 1 < hi_s:
        mid = (lo_s + hi_s) // 2
        if dt.datetime.fromtimestamp(mid, tz).utcoffset() == after_offset:
            hi_s = mid
        else:
            lo_s = mid
    return dt.datetime.fromtimestamp(hi_s, UTC)


def parse(expr: str, timezone: str | None = None, *, allow_seconds: bool = True) -> Schedule:
    """Validate a schedule and its timezone; Invalid names the offending field."""
    return _parse(expr, timezone, allow_seconds)


@functools.lru_cache(maxsize=4096)  # the ticker re-reads the same schedules every pass
def _parse(expr: str, timezone: str | None, allow_seconds: bool) -> Schedule:
    tz = zone(timezone)
    text = " ".join(str(expr).split())
    fields = ALIASES.get(text.lower(), text)
    count = len(fields.split())
    if not text or len(text) > MAX_SCHEDULE_LEN or count not in (5, 6):
        raise Invalid(f"invalid field 'schedule': {expr!r} is not a cron expression; use 5 "
                      "fields (minute hour day month weekday), e.g. '*/15 * * * *'",
                      field="schedule")
    if count == 6 and not allow_seconds:
        raise Invalid(f"invalid field 'schedule': {expr!r} has a seconds field; 6-field "
                      "schedules are disabled (set CRON_ALLOW_SECONDS_SCHEDULE=true)",
                      field="schedule")
    try:
        hours = croniter(fields, _PROBE.replace(tzinfo=None),
                         second_at_beginning=count == 6).expanded[1]
    except (CroniterError, ValueError, KeyError, IndexError) as exc:
        raise Invalid(f"invalid field 'schedule': {expr!r}: {exc}", field="schedule") from None
    schedule = Schedule(expr=text, fields=fields, seconds=count == 6,
                        every_hour=hours == ["*"] or len(hours) == 24, tz=tz)
    try:
        schedule.next_after(_PROBE)
    except (CroniterBadDateError, CroniterBadCronError, CroniterError) as exc:
        raise Invalid(f"invalid field 'schedule': {expr!r} never fires: {exc}",
                      field="schedule") from None
    return schedule


def next_fire(schedule: Schedule, after: dt.datetime,
              end_time: dt.datetime | None = None) -> dt.datetime | None:
    """The next occurrence after ``after``, or None once it would pass ``end_time``."""
    instant = schedule.next_after(after)
    if end_time is not None and instant > end_time:
        return None
    return instant


def advance(schedule: Schedule, occurrence: dt.datetime, now: dt.datetime, *,
            end_time: dt.datetime | None, grace_s: float) -> dt.datetime | None:
    """Where ``next_run_date`` goes once ``occurrence`` has fired.

    An occurrence at most ``grace_s`` late was merely late (a slow tick): the schedule
    continues from it, so the following ones fire too, each once. One later than that
    was missed (every instance was down): this single firing stands for it and for every
    other occurrence missed meanwhile, and the schedule resumes after ``now``.
    """
    late = (now - occurrence).total_seconds() > grace_s
    return next_fire(schedule, now if late else occurrence, end_time)


# -- cron rows and firings ----------------------------------------------------------------

# Wire order of the platform's Cron object; doubles as the select whitelist.
COLUMNS = ("cron_id", "assistant_id", "thread_id", "user_id", "end_time", "schedule",
           "timezone", "payload", "next_run_date", "metadata", "on_run_completed", "enabled",
           "created_at", "updated_at")
# The only client strings that reach ORDER BY, and only through this whitelist.
SORTABLE = ("cron_id", "assistant_id", "thread_id", "created_at", "updated_at",
            "next_run_date", "end_time")
# The owner's user (plain data) rides in the payload under this key, so every firing
# runs as its owner (spec/auth.md item 14); clients never see it (``cron_view``) and
# cannot set it (it is no template field).
OWNER_KEY = "__owner__"
# The run metadata the owner's ("threads", "create_run") handler stamped when the cron
# was created: every firing's run carries it, and so does the thread a stateless firing
# makes, so the owner can read what their cron ran (the ticker itself never calls auth).
RUN_METADATA_KEY = "__run_metadata__"
HIDDEN_KEYS = frozenset({OWNER_KEY, RUN_METADATA_KEY})

# Builds a run's execution params from a run body, its assistant row, whether it is on a
# thread and the user it runs as (``aegra.services.runs.build_params``, which gives the
# graph that user's identity keys); passed in, as the domain imports no service.
ParamsBuilder = Callable[[dict[str, Any], dict[str, Any], bool, dict[str, Any] | None],
                         dict[str, Any]]


class NewCron(msgspec.Struct, kw_only=True):
    cron_id: str
    assistant_id: str
    thread_id: str | None
    user_id: str | None
    schedule: str
    timezone: str | None
    end_time: dt.datetime | None
    enabled: bool
    on_run_completed: str | None
    payload: dict[str, Any]
    metadata: dict[str, Any]
    next_run_date: dt.datetime | None


class Firing(msgspec.Struct, kw_only=True):
    """What the ticker decided for one claimed cron (``plan``)."""

    run: NewRun | None  # None: nothing to fire (end_time passed, schedule unusable)
    next_run_date: dt.datetime | None  # None: the schedule is over
    occurrence: dt.datetime
    why: str | None = None  # for the log: why nothing fires, or what was worked around


class Fired(msgspec.Struct, kw_only=True):
    """One pass of the ticker over the due crons."""

    claimed: int = 0
    created: list[Created] = []
    skipped: list[tuple[str, str]] = []  # (cron_id, why) occurrences that made no run
    notes: list[tuple[str, str]] = []  # (cron_id, what) fired, with a workaround
    behind: bool = False  # an advanced cron is already due again: tick again at once
    next_due_s: float | None = None  # seconds until the earliest enabled cron is due


T = TypeVar("T")


def _iso(value: T) -> T | str:
    return value.astimezone(UTC).isoformat() if isinstance(value, dt.datetime) else value


def cron_view(row: dict[str, Any]) -> dict[str, Any]:
    """A cron row as clients see it: wire order, ISO timestamps, no owner."""
    out = {key: _iso(row[key]) for key in COLUMNS if key in row}
    payload = out.get("payload")
    if isinstance(payload, dict) and HIDDEN_KEYS & payload.keys():
        out["payload"] = {k: v for k, v in payload.items() if k not in HIDDEN_KEYS}
    return out


def cron_run(cron: dict[str, Any], assistant: dict[str, Any],
             occurrence: dt.datetime | None, build: ParamsBuilder) -> NewRun:
    """The run one firing makes: the cron's payload, as its owner, never its metadata.

    ``occurrence`` is the scheduled instant (None for the first run made at creation); it
    is kept in the execution params, which is how tests and the benchmark tie runs to
    occurrences.
    """
    payload = dict(cron.get("payload") or {})
    payload.pop("metadata", None)  # seed 001: cron metadata is not copied onto runs
    owner = payload.pop(OWNER_KEY, None)
    stamp = payload.pop(RUN_METADATA_KEY, None) or {}
    user_id = cron.get("user_id")
    if owner is None and user_id is not None:
        owner = user_dict(user_id, (), {})  # a cron stored before owners were kept
    threaded = cron["thread_id"] is not None
    body = {**payload, "assistant_id": cron["assistant_id"],
            "on_completion": cron.get("on_run_completed") or "delete"}
    params = build(body, assistant, threaded, owner)
    params["cron"] = {"cron_id": cron["cron_id"],
                      "scheduled_at": occurrence.isoformat() if occurrence else None}
    return NewRun(
        thread_id=cron["thread_id"], assistant_id=cron["assistant_id"],
        graph_id=assistant["graph_id"], params=params, metadata=dict(stamp),
        multitask_strategy=payload.get("multitask_strategy") or DEFAULT_MULTITASK,
        user_id=user_id, stateless=not threaded, cron_id=cron["cron_id"],
        thread_metadata=dict(stamp) if not threaded else {})


def plan(row: dict[str, Any], *, grace_s: float, build: ParamsBuilder) -> Firing:
    """The run and the next date for one claimed cron (runs inside the claim).

    ``row`` is the claimed cron joined with its assistant (``graph_id``,
    ``assistant_config``, ``assistant_context``) and the database's ``db_now``.
    """
    occurrence, now, end = row["next_run_date"], row["db_now"], row["end_time"]
    why = None
    try:
        schedule = parse(row["schedule"], row["timezone"])
    except Invalid as exc:
        if exc.field != "timezone":
            return Firing(run=None, next_run_date=None, occurrence=occurrence,
                          why=f"bad schedule: {exc.message}")
        # A zone the installed tzdata no longer knows: keep firing, in UTC.
        why = f"unknown timezone {row['timezone']!r}: fired in UTC"
        schedule = parse(row["schedule"], None)
    if end is not None and occurrence > end:
        return Firing(run=None, next_run_date=None, occurrence=occurrence,
                      why="past end_time")
    following = advance(schedule, occurrence, now, end_time=end, grace_s=grace_s)
    assistant = {"assistant_id": row["assistant_id"], "graph_id": row["graph_id"],
                 "config": row["assistant_config"], "context": row["assistant_context"]}
    return Firing(run=cron_run(row, assistant, occurrence, build), next_run_date=following,
                  occurrence=occurrence, why=why)


def skip(row: dict[str, Any], *, why: str) -> Firing:
    """Maintenance mode: the due occurrence makes no run and the schedule jumps to the
    next occurrence after now, so nothing missed meanwhile is caught up later."""
    occurrence, now, end = row["next_run_date"], row["db_now"], row["end_time"]
    try:
        schedule = parse(row["schedule"], row["timezone"])
    except Invalid:
        schedule = parse(row["schedule"], None)  # plan() reports a bad schedule later
    return Firing(run=None, next_run_date=next_fire(schedule, max(now, occurrence), end),
                  occurrence=occurrence, why=why)
