"""``aegra doctor``'s judgement of the numbers it gathered, and the database URL check
shared by ``aegra db`` / ``aegra doctor`` (the live checks are in tests/e2e/test_doctor.py)."""

from __future__ import annotations

import json

from aegra import doctor, localdb
from aegra.adapters.postgres.doctor import ExpiredLease, PgFacts
from aegra.config import Config
from aegra.localdb import Target

TARGET = Target("postgresql://u:secret@db:5432/aegra", "env DATABASE_URL", None)


def facts(**kw: object) -> PgFacts:
    base: dict[str, object] = dict(
        version="16.2", connections=5, active=1, max_connections=100, size_bytes=8_000_000,
        revisions=["0004"], ready=0, scheduled=0, oldest_pending_s=None, expired=[],
        expired_count=0)
    return PgFacts(**{**base, **kw})  # type: ignore[arg-type]


def judge(**kw: object) -> dict[str, doctor.Check]:
    return {c.name: c for c in doctor.judge_postgres(facts(**kw), "0004", Config(), TARGET)}


def test_healthy_numbers_are_all_ok_and_the_password_is_masked():
    checks = judge()
    assert {c.status for c in checks.values()} == {"ok"}
    assert "secret" not in checks["database"].detail
    lines = doctor.render(list(checks.values()))
    assert lines[-1] == "doctor: no problems found"
    assert lines[0].startswith("ok   database ")


def test_each_problem_fails_on_a_line_that_names_it():
    expired = [ExpiredLease("run-1", "host:42", 185.0)]
    checks = judge(revisions=["0002"], expired=expired, expired_count=4, connections=97)
    assert checks["migration"].status == "FAIL" and "0002" in checks["migration"].detail
    assert checks["leases"].status == "FAIL"
    assert "run-1 (claimed by host:42) and 3 more" in checks["leases"].detail
    assert "4 runs have an expired lease (oldest expired 3m 05s ago)" in checks["leases"].detail
    assert checks["connections"].status == "FAIL"
    report = doctor.render(list(checks.values()))
    assert report[-1] == "doctor: 3 problems: connections, leases, migration"
    assert [line.split()[0] for line in report[:-1]].count("FAIL") == 3
    assert json.loads(doctor.as_json(list(checks.values())))["problems"] == [
        "connections", "leases", "migration"]


def test_never_migrated_skips_the_run_checks():
    checks = judge(revisions=None, ready=None, scheduled=None, expired=None,
                   expired_count=None)
    assert checks["migration"].status == "FAIL"
    assert "never migrated" in checks["migration"].detail
    assert [checks[n].status for n in ("queue depth", "oldest pending", "leases")] == [
        "skip"] * 3


def test_busy_but_not_broken_only_warns():
    checks = judge(connections=85, ready=7, scheduled=2, oldest_pending_s=600.0)
    assert checks["connections"].status == "warn"
    assert checks["oldest pending"].status == "warn"
    assert checks["queue depth"].detail == "9 runs pending (2 of them scheduled for later)"
    assert checks["queue depth"].value == 9
    assert doctor.render(list(checks.values()))[-1] == "doctor: no problems found (2 warnings)"


def test_an_unusable_database_is_one_line():
    checks = doctor.run(Config(), "the database URL cannot be parsed", "0004")
    assert doctor.render(checks) == ["FAIL database        the database URL cannot be parsed"]
    assert doctor.failed(checks) == ["database"]


def test_database_urls_are_checked_without_echoing_them():
    assert localdb.url_problem("postgresql://u:pw@h:5432/d") is None
    assert localdb.url_problem("postgresql+asyncpg://u:pw@h/d") is None
    assert localdb.url_problem("host=/tmp dbname=x") is None
    for bad in ("mysql://u:topsecret@h/d", "topsecret", "postgresql://u:topsecret@h:x/d"):
        problem = localdb.url_problem(bad)
        assert problem is not None and "topsecret" not in problem, bad


def test_ages_and_sizes_read_well():
    assert [doctor.age(s) for s in (3, 185, 7300, 200_000)] == [
        "3s", "3m 05s", "2h 01m", "2d 7h"]
    assert [doctor.size(n) for n in (512, 8_000_000, 3 * 1024**3)] == [
        "512 B", "7.6 MB", "3.0 GB"]


def test_the_plain_readings_agree_with_the_modules_they_shortcut():
    from aegra.adapters.postgres import migrate, scripts
    from aegra.adapters.redis import probe, queue

    assert scripts.read_head() == migrate.head()
    assert probe.JOBS == queue.JOBS
