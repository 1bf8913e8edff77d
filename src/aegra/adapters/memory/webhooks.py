"""In-memory WebhookOutbox: the twin of ``PgWebhookOutbox`` for the dispatcher's tests.

Times are the Trio clock (so ``MockClock`` drives claims, backoff and the retry window)
where PostgreSQL uses ``now()``. Same rules: a claim counts an attempt and holds the row
for ``claim_s``; due rows are taken oldest due first; a record is fenced by (claimer,
attempt) and its attempt is logged either way. ``add`` stands for the insert a run's
finish makes.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import trio

from aegra.domain.webhook_outbox import AttemptResult, Delivery, Verdict


class _Row:
    def __init__(self, run_id: str, url: str, payload: dict[str, Any], now: float) -> None:
        self.id = str(uuid.uuid4())
        self.run_id, self.url, self.payload = run_id, url, payload
        self.status = "pending"
        self.attempts = 0
        self.next_at = now
        self.window_start = now
        self.claimed_by: str | None = None
        self.claim_until = 0.0
        self.created_at = now
        self.log: list[dict[str, Any]] = []
        self.last_status_code: int | None = None
        self.last_error: str | None = None


class MemoryWebhookOutbox:
    def __init__(self) -> None:
        self.rows: dict[str, _Row] = {}

    def add(self, run_id: str, url: str, payload: dict[str, Any]) -> str:
        row = _Row(run_id, url, payload, trio.current_time())
        self.rows[row.id] = row
        return row.id

    async def claim_due(self, owner: str, limit: int, claim_s: float,
                        window_s: float) -> list[Delivery]:
        await trio.lowlevel.checkpoint()
        now = trio.current_time()
        due = sorted((r for r in self.rows.values() if r.status == "pending"
                      and r.next_at <= now and r.claim_until < now),
                     key=lambda r: r.next_at)[:limit]
        out = []
        for row in due:
            row.claimed_by, row.claim_until = owner, now + claim_s
            row.attempts += 1
            out.append(Delivery(id=row.id, run_id=row.run_id, url=row.url,
                                payload=row.payload, attempt=row.attempts,
                                window_left_s=row.window_start + window_s - now))
        return out

    async def record(self, delivery: Delivery, owner: str, started_at: datetime,
                     result: AttemptResult, verdict: Verdict) -> bool:
        await trio.lowlevel.checkpoint()
        row = self.rows[delivery.id]
        if not any(a["attempt"] == delivery.attempt for a in row.log):
            row.log.append({"attempt": delivery.attempt, "started_at": started_at,
                            "status_code": result.status_code, "error": result.error})
        if row.claimed_by != owner or row.attempts != delivery.attempt:
            return False
        row.status = verdict.status
        row.last_status_code, row.last_error = result.status_code, result.error
        if verdict.retry_in_s is not None:
            row.next_at = trio.current_time() + verdict.retry_in_s
        row.claimed_by, row.claim_until = None, 0.0
        return True

    async def set_values(self, run_id: str, values: object) -> None:
        await trio.lowlevel.checkpoint()
        for row in self.rows.values():
            if row.run_id == run_id and row.attempts == 0:
                if values is not None:
                    row.payload = {**row.payload, "values": values}
                row.next_at = min(row.next_at, trio.current_time())

    async def log(self, run_id: str) -> list[dict[str, Any]]:
        await trio.lowlevel.checkpoint()
        return [{"webhook_id": r.id, "run_id": r.run_id, "url": r.url, "status": r.status,
                 "next_attempt_at": r.next_at if r.status == "pending" else None,
                 "last_status_code": r.last_status_code, "last_error": r.last_error,
                 "attempts": list(r.log)}
                for r in self.rows.values() if r.run_id == run_id]

    async def redeliver(self, run_id: str) -> list[dict[str, Any]]:
        now = trio.current_time()
        for row in self.rows.values():
            if row.run_id == run_id:
                row.status, row.next_at, row.window_start = "pending", now, now
        return await self.log(run_id)

    async def prune(self, older_than_s: float, limit: int) -> int:
        await trio.lowlevel.checkpoint()
        cutoff = trio.current_time() - older_than_s
        old = [row.id for row in self.rows.values()
               if row.status != "pending" and row.created_at < cutoff][:limit]
        for row_id in old:
            del self.rows[row_id]
        return len(old)
