"""Ring 1: cron occurrence maths (domain/crons.py), no I/O, no clock."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from aegra.domain import crons
from aegra.domain.errors import Invalid

UTC = dt.UTC
NY = "America/New_York"


def at(*args: int, tz: str | None = None) -> dt.datetime:
    """An aware instant: wall time in ``tz`` (UTC if None), converted to UTC."""
    zone = ZoneInfo(tz) if tz else UTC
    return dt.datetime(*args, tzinfo=zone).astimezone(UTC)


def series(expr: str, start: dt.datetime, n: int, tz: str | None = None,
           **kw: bool) -> list[dt.datetime]:
    schedule = crons.parse(expr, tz, **kw)
    out, t = [], start
    for _ in range(n):
        t = schedule.next_after(t)
        out.append(t)
    return out


def walls(instants: list[dt.datetime], tz: str) -> list[str]:
    return [i.astimezone(ZoneInfo(tz)).strftime("%m-%d %H:%M%z") for i in instants]


def test_every_15_minutes_in_utc():
    got = series("*/15 * * * *", at(2026, 5, 1, 10, 7, 30), 5)
    assert got == [at(2026, 5, 1, 10, 15), at(2026, 5, 1, 10, 30), at(2026, 5, 1, 10, 45),
                   at(2026, 5, 1, 11, 0), at(2026, 5, 1, 11, 15)]
    # strictly after: an instant on an occurrence gives the following one
    assert crons.parse("*/15 * * * *").next_after(at(2026, 5, 1, 10, 15)) == at(2026, 5, 1, 10, 30)


def test_weekdays_at_nine_new_york():
    # Friday 2026-01-09 -> Fri, Mon, Tue (the weekend is skipped), 09:00 EST = 14:00Z
    got = series("0 9 * * 1-5", at(2026, 1, 9, 0, 0), 3, NY)
    assert got == [at(2026, 1, 9, 14), at(2026, 1, 12, 14), at(2026, 1, 13, 14)]
    assert [g.astimezone(ZoneInfo(NY)).weekday() for g in got] == [4, 0, 1]


def test_month_ends_and_first_of_month():
    assert series("0 0 L * *", at(2026, 1, 7), 4) == [
        at(2026, 1, 31), at(2026, 2, 28), at(2026, 3, 31), at(2026, 4, 30)]
    assert series("0 0 L 2 *", at(2027, 3, 1), 1) == [at(2028, 2, 29)]  # leap year
    # day 31 only exists in some months: those are the only ones that fire
    assert series("0 12 31 * *", at(2026, 1, 31, 13), 3) == [
        at(2026, 3, 31, 12), at(2026, 5, 31, 12), at(2026, 7, 31, 12)]
    assert series("0 0 1 * *", at(2026, 12, 15), 2) == [at(2027, 1, 1), at(2027, 2, 1)]


def test_seconds_schedules():
    start = at(2026, 3, 7, 0, 0, 0) + dt.timedelta(microseconds=500)
    assert series("*/20 * * * * *", start, 4) == [
        at(2026, 3, 7, 0, 0, 20), at(2026, 3, 7, 0, 0, 40), at(2026, 3, 7, 0, 1, 0),
        at(2026, 3, 7, 0, 1, 20)]
    every = series("* * * * * *", at(2026, 3, 7, 23, 59, 58), 4)
    assert [(b - a).total_seconds() for a, b in zip(every, every[1:], strict=False)] == [1, 1, 1]
    # seconds-first: "0 30 9 * * *" is 09:30:00 daily, not 30 seconds past something
    assert series("0 30 9 * * *", at(2026, 3, 7), 1) == [at(2026, 3, 7, 9, 30)]


def test_spring_forward_no_skip_no_double():
    # 2026-03-08 02:00 EST -> 03:00 EDT in New York: 02:30 does not exist that day.
    got = series("30 2 * * *", at(2026, 3, 6, 12), 4, NY)
    assert walls(got, NY) == ["03-07 02:30-0500", "03-08 03:00-0400", "03-09 02:30-0400",
                              "03-10 02:30-0400"]
    # several wall times inside the gap collapse into one firing
    got = series("15,45 2 * * *", at(2026, 3, 7, 12), 3, NY)
    assert walls(got, NY) == ["03-08 03:00-0400", "03-09 02:15-0400", "03-09 02:45-0400"]
    # every 15 minutes keeps going in real time across the gap, no duplicate at 03:00
    got = series("*/15 * * * *", at(2026, 3, 8, 1, 40, tz=NY), 4, NY)
    assert walls(got, NY) == ["03-08 01:45-0500", "03-08 03:00-0400", "03-08 03:15-0400",
                              "03-08 03:30-0400"]
    assert got[1] - got[0] == dt.timedelta(minutes=15)


def test_fall_back_no_double_no_skip():
    # 2026-11-01 02:00 EDT -> 01:00 EST: 01:30 happens twice; a daily job fires once.
    got = series("30 1 * * *", at(2026, 10, 30, 12), 4, NY)
    assert walls(got, NY) == ["10-31 01:30-0400", "11-01 01:30-0400", "11-02 01:30-0500",
                              "11-03 01:30-0500"]
    # an every-15-minutes job fires through both passes of the repeated hour: 15 real
    # minutes apart every time, nothing twice at one instant, no hour missing
    got = series("*/15 * * * *", at(2026, 11, 1, 0, 50, tz=NY), 12, NY)
    gaps = {b - a for a, b in zip(got, got[1:], strict=False)}
    assert gaps == {dt.timedelta(minutes=15)}
    assert walls(got, NY)[3:6] == ["11-01 01:45-0400", "11-01 01:00-0500", "11-01 01:15-0500"]
    hourly = series("0 * * * *", at(2026, 11, 1, 0, 30, tz=NY), 3, NY)
    assert walls(hourly, NY) == ["11-01 01:00-0400", "11-01 01:00-0500", "11-01 02:00-0500"]


def _reference(expr: str, tz: str, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """Brute force, minute by minute: the instants whose local wall time matches, with a
    repeated wall time counted once (unless hourly) and a skipped one at the gap's end."""
    zone = ZoneInfo(tz)
    every_hour = crons.parse(expr, tz).every_hour
    out, t, gap_hit = [], start, False
    while t <= end:
        local = t.astimezone(zone)
        wall = local.replace(tzinfo=None)
        prev = (t - dt.timedelta(minutes=1)).astimezone(zone).replace(tzinfo=None)
        skipped = [prev + dt.timedelta(minutes=k)
                   for k in range(1, int((wall - prev).total_seconds() // 60))]
        gap_hit = any(croniter.match(expr, w) for w in skipped)
        repeated = local.fold == 1 and not every_hour
        if gap_hit or (croniter.match(expr, wall) and not repeated):
            out.append(t)
        t += dt.timedelta(minutes=1)
    return out


@pytest.mark.parametrize("expr", ["*/15 * * * *", "30 1 * * *", "30 2 * * *", "0 * * * *",
                                  "*/7 1-3 * * *", "45 0-4 * * *"])
@pytest.mark.parametrize("day", [dt.date(2026, 3, 8), dt.date(2026, 11, 1)])
def test_dst_days_match_brute_force_from_every_minute(expr, day):
    start = dt.datetime.combine(day, dt.time(4), UTC)
    end = start + dt.timedelta(hours=6)
    expected = _reference(expr, NY, start, end + dt.timedelta(hours=26))
    schedule = crons.parse(expr, NY)
    t = start
    while t <= end:  # from any instant, the next occurrence is the reference's next
        want = next(x for x in expected if x > t)
        assert schedule.next_after(t) == want, (expr, t)
        t += dt.timedelta(minutes=1)


def test_advance_late_occurrences_fire_each_missed_ones_fire_once():
    schedule = crons.parse("* * * * *")
    occ = at(2026, 5, 1, 10, 0)
    # 5 s late: the schedule continues from the occurrence (10:01 will fire too)
    assert crons.advance(schedule, occ, occ + dt.timedelta(seconds=5), end_time=None,
                         grace_s=10) == at(2026, 5, 1, 10, 1)
    # 3 hours late (everyone was down): one firing, then resume after now
    now = occ + dt.timedelta(hours=3, seconds=20)
    assert crons.advance(schedule, occ, now, end_time=None, grace_s=10) == at(2026, 5, 1, 13, 1)
    # end_time ends the schedule
    assert crons.advance(schedule, occ, occ, end_time=at(2026, 5, 1, 10, 0, 30),
                         grace_s=10) is None
    assert crons.next_fire(schedule, occ, at(2026, 5, 1, 10, 1)) == at(2026, 5, 1, 10, 1)


@pytest.mark.parametrize("expr, field", [
    ("not a cron", "schedule"), ("* * *", "schedule"), ("61 * * * *", "schedule"),
    ("0 0 30 2 *", "schedule"), ("0 3 * * * * *", "schedule"), ("", "schedule"),
])
def test_invalid_schedules_name_the_field(expr, field):
    with pytest.raises(Invalid) as err:
        crons.parse(expr)
    assert err.value.field == field and err.value.status == 422


def test_seconds_need_the_flag_and_timezones_must_be_iana():
    with pytest.raises(Invalid, match="CRON_ALLOW_SECONDS_SCHEDULE") as err:
        crons.parse("*/30 * * * * *", allow_seconds=False)
    assert err.value.field == "schedule"
    assert crons.parse("*/30 * * * * *", allow_seconds=True).seconds
    for bad in ("Mars/Olympus", "", "../etc/passwd"):
        with pytest.raises(Invalid) as err:
            crons.parse("0 * * * *", bad)
        assert err.value.field == "timezone"
    assert crons.parse("0 9 * * *").tz == ZoneInfo("UTC")  # the default
    assert crons.parse("@daily").next_after(at(2026, 5, 1, 10)) == at(2026, 5, 2)
