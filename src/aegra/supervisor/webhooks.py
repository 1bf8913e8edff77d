"""Webhook dispatcher actor (every instance): delivers the outbox (issue 13).

Owns the attempts it has claimed. Loop: claim the due deliveries it has room for (each
claim is a lease of twice the attempt timeout plus a second, taken with SKIP LOCKED, so
two instances never send the same attempt), POST each in its own task under a total
timeout, record the attempt with its
verdict (delivered, failed, or pending again after a jittered exponential backoff, within
the retry window). Then it sleeps until the poll interval passes or ``Wakeup.set`` (a run
finished here) cuts it short. Calls ``started()`` after its first claim, so the outbox is
reachable. When cancelled, attempts in flight stop; their claims expire and another
instance (or this one, restarted) tries again, with the same ``webhook-id``. Every
``prune_interval_s`` it also deletes finished deliveries older than ``retention_s``, in
bounded batches (the outbox would otherwise grow with every run). Restartable;
a ``StoreUnavailable`` is waited out by the policy.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import NoReturn

import trio

from aegra import logs
from aegra.config import WebhookDeliveryCfg
from aegra.domain.webhook_outbox import (
    AttemptResult,
    Delivery,
    RetryPolicy,
    WebhookOutbox,
    verdict,
)
from aegra.domain.webhooks import mask

log = logs.get_logger("aegra.webhook")
Sender = Callable[[Delivery], Awaitable[AttemptResult]]
CLAIM_MARGIN_S = 1.0  # a claim outlives its attempt's timeout twice over, plus this
PRUNE_BATCH = 1000  # finished deliveries deleted per transaction


class Wakeup:
    """Cuts the dispatcher's sleep short (a delivery was just written here)."""

    def __init__(self) -> None:
        self._event = trio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, timeout_s: float) -> None:
        with trio.move_on_after(timeout_s):
            await self._event.wait()
        self._event = trio.Event()


def retry_policy(cfg: WebhookDeliveryCfg) -> RetryPolicy:
    return RetryPolicy(window_s=cfg.retry_window_s, initial_s=cfg.initial_backoff_s,
                       max_backoff_s=cfg.max_backoff_s, jitter=cfg.jitter)


class _Attempts:
    def __init__(self, cfg: WebhookDeliveryCfg, outbox: WebhookOutbox, send: Sender,
                 owner: str, on_outcome: Callable[[bool], None],
                 rng: random.Random | None) -> None:
        self.cfg, self.outbox, self.send, self.owner = cfg, outbox, send, owner
        self.policy = retry_policy(cfg)
        self.on_outcome = on_outcome
        self.rng = rng
        self.slots = trio.Semaphore(cfg.concurrency)

    async def one(self, delivery: Delivery) -> None:
        try:
            started_at = datetime.now(UTC)
            result = await self._send(delivery)
            decided = verdict(delivery, result, self.policy, self.rng)
            kept = await self.outbox.record(delivery, self.owner, started_at, result,
                                            decided)
            log.info("webhook.attempt", run_id=delivery.run_id, webhook_id=delivery.id,
                     url=mask(delivery.url), attempt=delivery.attempt,
                     status_code=result.status_code, error=result.error,
                     outcome=decided.status, retry_in_s=decided.retry_in_s, kept=kept)
            if kept and decided.status != "pending":
                self.on_outcome(decided.status == "delivered")
        finally:
            self.slots.release()

    async def _send(self, delivery: Delivery) -> AttemptResult:
        with trio.move_on_after(self.cfg.timeout_s):
            try:
                return await self.send(delivery)
            except Exception as exc:  # a sender bug is one failed attempt, retried
                log.error("webhook.send_crashed", run_id=delivery.run_id,
                          error=repr(exc), exc_info=exc)
                return AttemptResult(error=f"internal error: {type(exc).__name__}")
        return AttemptResult(error=f"timed out after {self.cfg.timeout_s:g}s")


async def prune(outbox: WebhookOutbox, retention_s: float) -> int:
    """Delete finished deliveries past their retention, a bounded batch at a time, so a
    large backlog never holds one long transaction."""
    total = 0
    while True:
        deleted = await outbox.prune(retention_s, PRUNE_BATCH)
        total += deleted
        if deleted < PRUNE_BATCH:
            break
    if total:
        log.info("webhook.pruned", deliveries=total, retention_s=retention_s)
    return total


async def run_webhook_dispatcher(
    cfg: WebhookDeliveryCfg, outbox: WebhookOutbox, send: Sender, *, owner: str,
    wakeup: Wakeup, on_outcome: Callable[[bool], None] = lambda ok: None,
    rng: random.Random | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    attempts = _Attempts(cfg, outbox, send, owner, on_outcome, rng)
    claim_s = 2 * cfg.timeout_s + CLAIM_MARGIN_S
    first = True
    next_prune = trio.current_time()
    async with trio.open_nursery() as nursery:
        while True:
            if cfg.retention_s > 0 and trio.current_time() >= next_prune:
                next_prune = trio.current_time() + cfg.prune_interval_s
                await prune(outbox, cfg.retention_s)
            if attempts.slots.value == 0:
                async with attempts.slots:  # every slot busy: wait for one to free
                    pass
            room = attempts.slots.value
            due = await outbox.claim_due(owner, room, claim_s, cfg.retry_window_s)
            for delivery in due:
                await attempts.slots.acquire()
                nursery.start_soon(attempts.one, delivery)
            if first:
                first = False
                task_status.started()
            if len(due) < room:  # nothing more is due now
                await wakeup.wait(cfg.poll_interval_s)
    raise AssertionError("unreachable")
