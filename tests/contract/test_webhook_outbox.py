"""The WebhookOutbox contract (claim, fenced record, log, redeliver), run on the in-memory
outbox and on PostgreSQL; plus, on PostgreSQL, the delivery a run's finish writes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from aegra.adapters.memory.webhooks import MemoryWebhookOutbox
from aegra.adapters.postgres import migrate
from aegra.adapters.postgres.leases import PgLeases
from aegra.adapters.postgres.runs import NewRun, PgRuns
from aegra.adapters.postgres.webhooks import PgWebhookOutbox
from aegra.domain.leases import Expired
from aegra.domain.ports import Outcome
from aegra.domain.webhook_outbox import AttemptResult, Verdict, classify
from tests.contract.support import pg_pool

URL = "https://hooks.example.com/h"


class PgSide:
    def __init__(self, pool: Any) -> None:
        self.pool, self.outbox = pool, PgWebhookOutbox(pool)

    async def add(self, run_id: str) -> str:
        return str(await self.pool.fetchval(
            """INSERT INTO aegra_webhook_deliveries (id, run_id, thread_id, url, payload)
               VALUES (gen_random_uuid(), $1, 't', $2, $3) RETURNING id""",
            run_id, URL, {"run_id": run_id}))

    async def finish(self, wid: str, status: str, age_s: float) -> None:
        await self.pool.execute(
            """UPDATE aegra_webhook_deliveries SET status = $2,
                      created_at = now() - make_interval(secs => $3) WHERE id = $1::uuid""",
            wid, status, age_s)

    async def ids(self) -> set[str]:
        rows = await self.pool.fetch("SELECT id::text AS id FROM aegra_webhook_deliveries")
        return {r["id"] for r in rows}


class MemorySide:
    def __init__(self) -> None:
        self.outbox = MemoryWebhookOutbox()

    async def add(self, run_id: str) -> str:
        return self.outbox.add(run_id, URL, {"run_id": run_id})

    async def finish(self, wid: str, status: str, age_s: float) -> None:
        row = self.outbox.rows[wid]
        row.status, row.created_at = status, row.created_at - age_s

    async def ids(self) -> set[str]:
        return set(self.outbox.rows)


@pytest.fixture(params=["memory", "postgres"])
def side(request: pytest.FixtureRequest) -> Any:
    dsn = None
    if request.param == "postgres":
        dsn = request.getfixturevalue("database_url")
        migrate.ensure_migrated(dsn)

    @asynccontextmanager
    async def open_side() -> AsyncIterator[Any]:
        if dsn is None:
            yield MemorySide()
            return
        async with pg_pool(dsn) as pool:
            yield PgSide(pool)
    return open_side


async def test_claims_are_exclusive_and_records_fenced(side):
    async with side() as s:
        run_id = str(uuid.uuid4())
        wid = await s.add(run_id)
        (first,) = await s.outbox.claim_due("A", 10, 30.0, 3600.0)
        assert (first.id, first.run_id, first.attempt, first.url) == (wid, run_id, 1, URL)
        assert first.payload == {"run_id": run_id} and 3500 < first.window_left_s <= 3600
        assert await s.outbox.claim_due("B", 10, 30.0, 3600.0) == []  # A holds it
        now = datetime.now(UTC)
        lost = await s.outbox.record(first, "B", now, classify(200), Verdict(status="delivered"))
        assert lost is False
        retry = Verdict(status="pending", retry_in_s=3600.0)
        kept = await s.outbox.record(first, "A", now, classify(503), retry)
        assert kept is True
        assert await s.outbox.claim_due("B", 10, 30.0, 3600.0) == []  # not due for an hour
        (entry,) = await s.outbox.log(run_id)
        assert entry["status"] == "pending" and entry["next_attempt_at"] is not None
        assert entry["last_status_code"] == 503
        assert [a["attempt"] for a in entry["attempts"]] == [1]  # logged once


async def test_redeliver_makes_it_due_again_with_the_same_id(side):
    async with side() as s:
        run_id = str(uuid.uuid4())
        wid = await s.add(run_id)
        (first,) = await s.outbox.claim_due("A", 10, 30.0, 3600.0)
        assert await s.outbox.record(first, "A", datetime.now(UTC), classify(204),
                                     Verdict(status="delivered"))
        assert await s.outbox.claim_due("A", 10, 30.0, 3600.0) == []
        (entry,) = await s.outbox.redeliver(run_id)
        assert entry["status"] == "pending"
        (again,) = await s.outbox.claim_due("B", 10, 30.0, 3600.0)
        assert again.id == wid and again.attempt == 2
        assert await s.outbox.redeliver(str(uuid.uuid4())) == []
        failed = AttemptResult(error="refused", final=True)
        assert await s.outbox.record(again, "B", datetime.now(UTC), failed,
                                     Verdict(status="failed"))
        (entry,) = await s.outbox.log(run_id)
        assert entry["status"] == "failed" and entry["last_error"] == "refused"
        assert [a["attempt"] for a in entry["attempts"]] == [1, 2]


async def test_finish_and_settle_write_the_delivery_with_the_final_status(database_url):
    migrate.ensure_migrated(database_url)
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO assistant (assistant_id, graph_id, name) "
                     "VALUES ('a', 'g', 'g') ON CONFLICT DO NOTHING")
    async with pg_pool(database_url) as pool:
        runs, plain = PgRuns(pool, outbox=True), PgRuns(pool)
        made = {}
        for key, params in (("hook", {"webhook": URL}), ("none", {}), ("off", {"webhook": URL}),
                            ("settled", {"webhook": URL}), ("stopped", {"webhook": URL})):
            new = NewRun(thread_id=str(uuid.uuid4()), assistant_id="a", graph_id="g",
                         params=params, multitask_strategy="enqueue", if_not_exists="create")
            run_id = (await runs.create(new)).run["run_id"]
            made[key] = (run_id, await runs.claim(run_id, "A", 30))
        done = Outcome(status="success", values={"v": 1})
        for key, store in (("hook", runs), ("none", runs), ("off", plain)):
            assert (await store.finish(made[key][1], "A", done, {"v": 1}, {}))[0]
        outbox = PgWebhookOutbox(pool)
        (entry,) = await outbox.log(made["hook"][0])
        assert entry["status"] == "pending" and entry["url"] == URL
        assert await outbox.log(made["none"][0]) == []  # no webhook named
        assert await outbox.log(made["off"][0]) == []  # http.disable_webhooks
        (due,) = [d for d in await outbox.claim_due("A", 100, 30.0, 60.0)
                  if d.run_id == made["hook"][0]]
        body = due.payload
        assert body["status"] == "success" and body["values"] == {"v": 1}
        assert body["run_started_at"] and body["run_ended_at"] and body["kwargs"]["webhook"]
        assert "webhook_sent_at" not in body  # stamped at each attempt
        run_id, claimed = made["settled"]
        await pool.execute("UPDATE runs SET lease_expires_at = now() - interval '1 s', "
                           "retries = 9 WHERE run_id = $1", run_id)
        expired = Expired(run_id=run_id, thread_id=claimed.thread_id, graph_id="g", retries=9)
        assert await PgLeases(pool, outbox=True).settle(expired, None, "exhausted")
        (settled,) = await outbox.log(run_id)
        assert settled["status"] == "pending"
        # A run stopped from outside: held until its thread's values are filled in.
        run_id, claimed = made["stopped"]
        assert (await runs.finish(claimed, "A", Outcome(status="interrupted"), None, {}))[0]
        assert [d for d in await outbox.claim_due("A", 100, 30.0, 60.0)
                if d.run_id == run_id] == []
        await outbox.set_values(run_id, {"v": "latest"})
        (released,) = [d for d in await outbox.claim_due("A", 100, 30.0, 60.0)
                       if d.run_id == run_id]
        assert released.payload["status"] == "interrupted"
        assert released.payload["values"] == {"v": "latest"}


async def test_values_are_refreshed_only_before_the_first_attempt(side):
    async with side() as s:
        run_id = str(uuid.uuid4())
        await s.add(run_id)
        await s.outbox.set_values(run_id, {"messages": ["latest"]})
        (first,) = await s.outbox.claim_due("A", 10, 30.0, 3600.0)
        assert first.payload == {"run_id": run_id, "values": {"messages": ["latest"]}}
        await s.outbox.set_values(run_id, {"messages": ["too late"]})
        await s.outbox.record(first, "A", datetime.now(UTC), classify(500),
                              Verdict(status="pending", retry_in_s=0.0))
        (again,) = await s.outbox.claim_due("A", 10, 30.0, 3600.0)
        assert again.payload["values"] == {"messages": ["latest"]}


async def test_prune_deletes_only_finished_deliveries_past_retention(side):
    async with side() as s:
        old_ok, old_failed, old_pending, young_ok = [
            await s.add(str(uuid.uuid4())) for _ in range(4)]
        await s.finish(old_ok, "delivered", 3600.0)
        await s.finish(old_failed, "failed", 3600.0)
        await s.finish(old_pending, "pending", 3600.0)
        await s.finish(young_ok, "delivered", 10.0)
        assert await s.outbox.prune(600.0, 1) == 1  # bounded by the limit
        assert await s.outbox.prune(600.0, 100) == 1
        assert await s.outbox.prune(600.0, 100) == 0
        assert await s.ids() == {old_pending, young_ok}
