"""``aegra doctor``: checks a live deployment, one line per check.

The adapters gather numbers (``adapters/postgres/doctor.py``, ``adapters/redis/probe.py``);
this module judges them and renders the report. Statuses:

    ok    nothing to do
    warn  worth a look, does not change the exit code (a long queue, a busy server)
    FAIL  something is wrong: the exit code is 1
    skip  could not be checked because of another check's FAIL (no schema yet)

Problems that fail: the database cannot be reached, connections at 95% of
``max_connections``, a ``running`` run whose lease has expired (its instance died or
stalls), a schema that is not at this release's head (never migrated, behind, or ahead),
Redis unreachable while ``REDIS_BROKER_ENABLED=true``. The failing line always names the
problem: ``database``, ``connections``, ``leases``, ``migration``, ``redis``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import msgspec

from aegra import localdb
from aegra.adapters.postgres import doctor as pg
from aegra.config import Config, Loaded
from aegra.config import _mask as mask_url
from aegra.domain.errors import StoreUnavailable
from aegra.localdb import Target

Status = Literal["ok", "warn", "FAIL", "skip"]
CONNECT_TIMEOUT_S = 5.0  # a doctor answers quickly, even when the network does not
CONNECTIONS_WARN, CONNECTIONS_FAIL = 0.80, 0.95


class Check(msgspec.Struct, frozen=True):
    name: str
    status: Status
    detail: str
    value: object = None  # the number behind the line, for --json


def diagnose(loaded: Loaded, root: Path) -> list[Check]:
    """Resolve the database as ``aegra dev`` does (never creating the embedded one), then
    run every check."""
    from aegra.adapters.postgres.scripts import read_head

    try:
        target: Target | str = localdb.resolve(loaded, root, create=False)
    except localdb.Unusable as exc:
        target = str(exc)
    head = read_head()
    if head is None:  # a history the plain reading cannot settle: ask alembic (slower)
        from aegra.adapters.postgres.migrate import head as alembic_head

        head = alembic_head()
    return run(loaded.config, target, head)


def run(cfg: Config, target: Target | str, head: str) -> list[Check]:
    """All checks. ``target`` is the resolved database, or why it could not be had."""
    checks: list[Check] = []
    if isinstance(target, str):
        checks.append(Check("database", "FAIL", target))
    else:
        timeout_s = min(cfg.postgres.connect_timeout_s, CONNECT_TIMEOUT_S)
        try:
            facts = pg.inspect(target.dsn, timeout_s)
        except StoreUnavailable as exc:
            checks.append(Check("database", "FAIL", (
                f"cannot connect to {mask_url(target.dsn)} [{target.where}]: {exc.message}")))
        else:
            checks += judge_postgres(facts, head, cfg, target)
    if cfg.redis.enabled:
        checks.append(redis_check(cfg.redis.url))
    return checks


def judge_postgres(facts: pg.PgFacts, head: str, cfg: Config, target: Target) -> list[Check]:
    checks = [
        Check("database", "ok", f"PostgreSQL {facts.version.split()[0]} at {mask_url(target.dsn)}"
                                f" [{target.where}]", facts.version),
        connections(facts),
        Check("database size", "ok", size(facts.size_bytes), facts.size_bytes),
    ]
    if facts.ready is None or facts.expired is None:
        why = "no runs table (the database was never migrated)"
        checks += [Check(name, "skip", why) for name in ("queue depth", "oldest pending",
                                                        "leases")]
    else:
        # The total, as the aegra_queue_depth metric counts; scheduled ones are named.
        pending = facts.ready + (facts.scheduled or 0)
        later = f" ({facts.scheduled} of them scheduled for later)" if facts.scheduled else ""
        checks.append(Check("queue depth", "ok", f"{_runs(pending)} pending{later}", pending))
        checks.append(oldest_pending(facts.oldest_pending_s,
                                     cfg.reaper.stuck_pending_threshold_s))
        checks.append(leases(facts.expired, facts.expired_count or 0, cfg))
    checks.append(migration(facts.revisions, head))
    return checks


def connections(facts: pg.PgFacts) -> Check:
    share = facts.connections / max(1, facts.max_connections)
    detail = (f"{facts.connections} of max_connections {facts.max_connections} in use"
              f" ({share:.0%}), {facts.active} active")
    if share >= CONNECTIONS_FAIL:
        return Check("connections", "FAIL", detail + ": new connections will soon be refused;"
                     " lower POSTGRES_POOL_MAX_SIZE or add a pooler", facts.connections)
    if share >= CONNECTIONS_WARN:
        return Check("connections", "warn", detail, facts.connections)
    return Check("connections", "ok", detail, facts.connections)


def oldest_pending(age_s: float | None, stuck_s: float) -> Check:
    if age_s is None:
        return Check("oldest pending", "ok", "none waiting")
    detail = f"waiting {age(age_s)}"
    if age_s > stuck_s:
        return Check("oldest pending", "warn", detail + f" (over {age(stuck_s)}): are workers"
                     " running and keeping up?", age_s)
    return Check("oldest pending", "ok", detail, age_s)


def leases(expired: list[pg.ExpiredLease], count: int, cfg: Config) -> Check:
    if count == 0:
        return Check("leases", "ok", "no running run has an expired lease", 0)
    runs = ", ".join(f"{e.run_id} (claimed by {e.claimed_by or 'nobody'})" for e in expired)
    more = f" and {count - len(expired)} more" if count > len(expired) else ""
    return Check("leases", "FAIL", (
        f"{_runs(count)} {'has' if count == 1 else 'have'} an expired lease"
        f" (oldest expired {age(expired[0].expired_s)} ago): {runs}{more}; the instance"
        " running them died or stalls. A live instance's reaper requeues them within"
        f" {age(cfg.reaper.interval_s)}; if none is running, start one"), count)


def migration(revisions: list[str] | None, head: str) -> Check:
    fix = "run `aegra db upgrade` (or start `aegra serve`, which migrates on startup)"
    if revisions is None or not revisions:
        return Check("migration", "FAIL",
                     f"database never migrated (no alembic_version), head is {head}: {fix}")
    if revisions == [head]:
        return Check("migration", "ok", f"at head {head}", head)
    shown = ", ".join(revisions)
    return Check("migration", "FAIL", (
        f"database at {shown}, this aegra's head is {head}: {fix}; if the database is"
        " ahead, this aegra is older than the one that migrated it"), shown)


def redis_check(url: str) -> Check:
    from aegra.adapters.redis import probe

    try:
        facts = probe.probe(url, CONNECT_TIMEOUT_S)
    except StoreUnavailable as exc:
        return Check("redis", "FAIL", f"unreachable at {mask_url(url)}: {exc.message}"
                     " (REDIS_BROKER_ENABLED=true)")
    return Check("redis", "ok", f"reachable at {mask_url(url)} (ping"
                 f" {facts.ping_s * 1000:.1f} ms, {facts.queued} queued)", facts.queued)


def failed(checks: list[Check]) -> list[str]:
    return [c.name for c in checks if c.status == "FAIL"]


def render(checks: list[Check]) -> list[str]:
    lines = [f"{c.status:<4} {c.name:<14}  {c.detail}" for c in checks]
    if len(checks) == 1:
        return lines  # e.g. the database cannot be reached: its line says it all
    problems = failed(checks)
    warnings = sum(c.status == "warn" for c in checks)
    note = f" ({warnings} warning{'s' if warnings != 1 else ''})" if warnings else ""
    if problems:
        lines.append(f"doctor: {len(problems)} problem{'s' if len(problems) != 1 else ''}:"
                     f" {', '.join(problems)}{note}")
    else:
        lines.append(f"doctor: no problems found{note}")
    return lines


def as_json(checks: list[Check]) -> bytes:
    return msgspec.json.encode({
        "ok": not failed(checks),
        "problems": failed(checks),
        "checks": [{"name": c.name, "status": c.status.lower(), "detail": c.detail,
                    "value": c.value} for c in checks],
    })


def age(seconds: float) -> str:
    s = max(0, round(seconds))
    if s < 90:
        return f"{s}s"
    if s < 90 * 60:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 48 * 3600:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def _runs(n: int) -> str:
    return f"{n} run{'s' if n != 1 else ''}"
