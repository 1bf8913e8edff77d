"""The webhook outbox: what a delivery is, when it is tried again, and its port.

A run with a webhook gets one delivery, written in the transaction that finishes it, so
no crash between "finished" and "posted" loses it. Any instance's dispatcher claims due
deliveries (a short claim lease, so two instances never send the same attempt), posts,
and records the attempt. The promise is at-least-once: a claimer killed after its POST
and before its record is retried once the claim expires, with the same ``webhook-id``,
which receivers use as their idempotency key.

Retry schedule (``next_delay``): ``initial_s * 2**(n-1)``, capped at ``max_backoff_s``,
minus up to ``jitter`` of it at random (full-jitter style spreads a herd of retries to a
receiver that comes back); no attempt starts more than ``window_s`` after the delivery
was written (or redelivered). Outcomes (``classify``): 2xx delivered; 408, 429, 5xx,
connection errors and timeouts are retried; any other status (a 3xx is not followed, a
4xx is the receiver's final word) and a URL the policy refuses fail at once.

Pure: no I/O, no trio. The adapters are ``adapters/postgres/webhooks.py`` and
``adapters/memory/webhooks.py``; the sender is ``adapters/webhook.py``.
"""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

import msgspec

Status = Literal["pending", "delivered", "failed"]
RETRIED_CODES = frozenset({408, 429})


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    window_s: float = 24 * 3600.0
    initial_s: float = 5.0
    max_backoff_s: float = 3600.0
    jitter: float = 0.5  # fraction of a delay that may be taken off at random


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """A claimed delivery: what the dispatcher needs to make one attempt."""

    id: str  # the webhook-id
    run_id: str
    url: str
    payload: dict[str, Any]
    attempt: int  # this claim's number (1 = first); fences the record
    window_left_s: float  # seconds until the retry window closes (database clock)


class AttemptResult(msgspec.Struct, frozen=True, kw_only=True):
    status_code: int | None = None
    error: str | None = None
    final: bool = False  # no point in retrying (refused URL, a 4xx)

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    status: Status
    retry_in_s: float | None = None  # pending: when to try again


def classify(status_code: int) -> AttemptResult:
    """An HTTP response as an attempt's result (see the module docstring)."""
    if 200 <= status_code < 300:
        return AttemptResult(status_code=status_code)
    final = status_code < 500 and status_code not in RETRIED_CODES
    return AttemptResult(status_code=status_code, error=f"HTTP {status_code}", final=final)


def next_delay(attempt: int, policy: RetryPolicy, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
    base = min(policy.max_backoff_s, policy.initial_s * 2.0 ** max(0, attempt - 1))
    if policy.jitter <= 0:
        return base
    return base * (1.0 - policy.jitter * (rng or random).random())


def verdict(delivery: Delivery, result: AttemptResult, policy: RetryPolicy,
            rng: random.Random | None = None) -> Verdict:
    """What the delivery becomes after this attempt."""
    if result.ok:
        return Verdict(status="delivered")
    if result.final:
        return Verdict(status="failed")
    delay = next_delay(delivery.attempt, policy, rng)
    if delay > delivery.window_left_s:
        return Verdict(status="failed")  # the next try would start after the window
    return Verdict(status="pending", retry_in_s=delay)


def body(payload: dict[str, Any], sent_at: datetime) -> bytes:
    """The bytes posted (and signed): the stored payload plus ``webhook_sent_at``."""
    return msgspec.json.encode({**payload, "webhook_sent_at": sent_at.isoformat()},
                               enc_hook=str)


@runtime_checkable
class WebhookOutbox(Protocol):
    """Durable deliveries (the writing happens inside the run store's finish)."""

    async def claim_due(self, owner: str, limit: int, claim_s: float,
                        window_s: float) -> list[Delivery]:
        """Up to ``limit`` due pending deliveries, claimed by ``owner`` for ``claim_s``;
        each claim counts an attempt. Rows another claimer holds are skipped."""
        ...

    async def record(self, delivery: Delivery, owner: str, started_at: datetime,
                     result: AttemptResult, verdict: Verdict) -> bool:
        """Log the attempt and apply the verdict, fenced by (owner, attempt): False if
        the claim was lost meanwhile (another instance has the delivery now)."""
        ...

    async def set_values(self, run_id: str, values: object) -> None:
        """The body's ``values`` of a delivery not yet attempted (None: unchanged), now
        due: a run stopped from outside gets its thread's latest values after the finish
        wrote its delivery, which is held until then (a few seconds at most)."""
        ...

    async def log(self, run_id: str) -> list[dict[str, Any]]:
        """The run's deliveries, each with its ``attempts``, oldest first."""
        ...

    async def redeliver(self, run_id: str) -> list[dict[str, Any]]:
        """Make the run's deliveries pending and due now, with a fresh retry window and
        the same webhook-id; [] if the run has none."""
        ...

    async def prune(self, older_than_s: float, limit: int) -> int:
        """Delete up to ``limit`` finished (delivered or failed) deliveries, with their
        attempts, created more than ``older_than_s`` ago; how many were deleted. Pending
        ones are never pruned, however old."""
        ...
