"""Ring 1: the webhook dispatcher over the in-memory outbox, under MockClock."""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import partial

import msgspec
import trio
import trio.testing

from aegra.adapters.memory.webhooks import MemoryWebhookOutbox
from aegra.config import WebhookDeliveryCfg
from aegra.domain.webhook_outbox import AttemptResult, Delivery, classify
from aegra.supervisor.webhooks import Wakeup, run_webhook_dispatcher

CFG = WebhookDeliveryCfg(poll_interval_s=1.0, retry_window_s=3600.0, initial_backoff_s=5.0,
                         max_backoff_s=60.0, jitter=0.5, concurrency=4, timeout_s=10.0)


class Receiver:
    """Answers ``code_at(now)``; records every attempt (webhook-id, attempt, time)."""

    def __init__(self, up_after: float = 0.0, hang: bool = False) -> None:
        self.up_after = up_after
        self.hang = hang
        self.calls: list[tuple[str, int, float]] = []

    async def __call__(self, delivery: Delivery) -> AttemptResult:
        now = trio.current_time()
        self.calls.append((delivery.id, delivery.attempt, now))
        if self.hang:
            await trio.sleep_forever()
        await trio.sleep(0.1)
        return classify(200 if now >= self.up_after else 503)

    def successes(self) -> int:
        return sum(1 for _, _, at in self.calls if at >= self.up_after)


async def _until(check: Callable[[], object], step: float = 1.0) -> None:
    """Poll under the MockClock (virtual seconds: no real time passes)."""
    for _ in range(100_000):
        if check():
            return
        await trio.sleep(step)
    raise AssertionError("condition never met")


async def _dispatcher(nursery: trio.Nursery, outbox: MemoryWebhookOutbox, send: Receiver,
                      owner: str, outcomes: list[bool] | None = None,
                      cfg: WebhookDeliveryCfg = CFG) -> trio.CancelScope:
    scope = trio.CancelScope()

    async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with scope:
            await run_webhook_dispatcher(
                cfg, outbox, send, owner=owner, wakeup=Wakeup(), rng=random.Random(7),
                on_outcome=(outcomes.append if outcomes is not None else lambda ok: None),
                task_status=task_status)

    await nursery.start(run)
    return scope


async def test_receiver_down_then_up_gets_exactly_one_success(autojump_clock):
    outbox, receiver, outcomes = MemoryWebhookOutbox(), Receiver(up_after=200.0), []
    wid = outbox.add("run-1", "https://hooks.example.com/x", {"run_id": "run-1"})
    async with trio.open_nursery() as nursery:
        await _dispatcher(nursery, outbox, receiver, "a", outcomes)
        await _until(lambda: outbox.rows[wid].status != "pending")
        await trio.sleep(600)  # nothing more is sent after the success
        nursery.cancel_scope.cancel()
    assert outbox.rows[wid].status == "delivered" and outcomes == [True]
    assert receiver.successes() == 1
    times = [at for _, _, at in receiver.calls]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert len(times) >= 4 and all(g >= 2.5 for g in gaps)  # backed off, jittered
    assert all(g <= 61 for g in gaps)  # capped at max_backoff_s (+ the attempt itself)
    assert {wid} == {i for i, _, _ in receiver.calls}  # one webhook-id throughout


async def test_gives_up_after_the_window_and_counts_a_failure(autojump_clock):
    cfg = WebhookDeliveryCfg(poll_interval_s=1.0, retry_window_s=100.0, initial_backoff_s=5.0,
                             max_backoff_s=20.0, jitter=0.0, concurrency=2, timeout_s=5.0)
    outbox, receiver, outcomes = MemoryWebhookOutbox(), Receiver(up_after=1e9), []
    wid = outbox.add("run-1", "https://hooks.example.com/x", {})
    async with trio.open_nursery() as nursery:
        await _dispatcher(nursery, outbox, receiver, "a", outcomes, cfg)
        await _until(lambda: outbox.rows[wid].status != "pending")
        nursery.cancel_scope.cancel()
    assert outbox.rows[wid].status == "failed" and outcomes == [False]
    assert max(at for _, _, at in receiver.calls) <= 100.0
    # Delays 5, 10, 20, 20, 20 (capped), each plus the attempt and up to one poll; the
    # next 20 s would start past the 100 s window, so the sixth failure is the last.
    times = [at for _, _, at in receiver.calls]
    gaps = [round(b - a) for a, b in zip(times, times[1:], strict=False)]
    assert gaps == [6, 11, 21, 21, 21]


async def test_two_dispatchers_never_send_the_same_attempt(autojump_clock):
    outbox, receiver = MemoryWebhookOutbox(), Receiver(up_after=30.0)
    ids = [outbox.add(f"run-{i}", "https://hooks.example.com/x", {}) for i in range(12)]
    async with trio.open_nursery() as nursery:
        await _dispatcher(nursery, outbox, receiver, "a")
        await _dispatcher(nursery, outbox, receiver, "b")
        await _until(lambda: all(outbox.rows[i].status != "pending" for i in ids))
        nursery.cancel_scope.cancel()
    attempts = [(wid, n) for wid, n, _ in receiver.calls]
    assert len(attempts) == len(set(attempts))
    assert all(outbox.rows[i].status == "delivered" for i in ids)
    assert receiver.successes() == 12


async def test_a_killed_claimer_is_retried_after_its_claim_expires(autojump_clock):
    outbox = MemoryWebhookOutbox()
    wid = outbox.add("run-1", "https://hooks.example.com/x", {})
    hung, healthy = Receiver(hang=True), Receiver()
    async with trio.open_nursery() as nursery:
        first = await _dispatcher(nursery, outbox, hung, "a")
        await _until(lambda: hung.calls, step=0.01)
        first.cancel()  # the instance dies mid-attempt, its claim left behind
        claimed_at = hung.calls[0][2]
        await _dispatcher(nursery, outbox, healthy, "b")
        await _until(lambda: outbox.rows[wid].status != "pending")
        nursery.cancel_scope.cancel()
    (_, attempt, at), = healthy.calls
    assert attempt == 2 and at >= claimed_at + 2 * CFG.timeout_s + 1.0  # after the claim lease


async def test_concurrency_is_bounded(autojump_clock):
    outbox = MemoryWebhookOutbox()
    for i in range(10):
        outbox.add(f"run-{i}", "https://hooks.example.com/x", {})
    in_flight, peak = 0, 0

    async def slow(delivery: Delivery) -> AttemptResult:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await trio.sleep(1)
        in_flight -= 1
        return classify(204)

    async with trio.open_nursery() as nursery:
        await nursery.start(partial(run_webhook_dispatcher, CFG, outbox, slow, owner="a",
                                    wakeup=Wakeup()))
        await _until(lambda: all(r.status != "pending" for r in outbox.rows.values()))
        nursery.cancel_scope.cancel()
    assert peak == CFG.concurrency


async def test_finished_deliveries_are_pruned_after_their_retention(autojump_clock):
    # Retention 100 s, pruning every 10 s: a delivered row goes once it is 100 s old (and
    # not before), a pending one (never due again) is kept however old it gets.
    cfg = msgspec.structs.replace(CFG, retention_s=100.0, prune_interval_s=10.0)
    outbox = MemoryWebhookOutbox()
    delivered = outbox.add("run-ok", "https://hooks.example.com/h", {"run_id": "run-ok"})
    created = outbox.rows[delivered].created_at
    stuck = outbox.add("run-down", "https://hooks.example.com/h", {"run_id": "run-down"})
    outbox.rows[stuck].next_at = 1e9  # never due: it stays pending
    async with trio.open_nursery() as nursery:
        scope = await _dispatcher(nursery, outbox, Receiver(), "A", cfg=cfg)
        await _until(lambda: outbox.rows[delivered].status == "delivered", step=0.5)
        await _until(lambda: delivered not in outbox.rows, step=0.5)
        gone_after = trio.current_time() - created
        assert 100.0 <= gone_after <= 100.0 + cfg.prune_interval_s + 1.0, gone_after
        await trio.sleep(1000.0)
        assert outbox.rows[stuck].status == "pending"
        scope.cancel()
