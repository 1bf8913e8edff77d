"""The outbox's pure rules: retry schedule, outcomes, the body, and signing."""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from aegra.adapters.webhook import WebhookSender, signer
from aegra.domain.webhook_outbox import (
    AttemptResult,
    Delivery,
    RetryPolicy,
    body,
    classify,
    next_delay,
    verdict,
)
from aegra.domain.webhooks import UrlPolicy

POLICY = RetryPolicy(window_s=3600, initial_s=5, max_backoff_s=60, jitter=0.5)
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def _delivery(attempt: int, window_left_s: float = 1000.0) -> Delivery:
    return Delivery(id="d1", run_id="r1", url="https://x.example/h", payload={},
                    attempt=attempt, window_left_s=window_left_s)


def test_backoff_doubles_up_to_the_cap_without_jitter():
    flat = RetryPolicy(initial_s=5, max_backoff_s=60, jitter=0.0)
    assert [next_delay(n, flat) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]


def test_jitter_only_takes_off_up_to_its_fraction_and_spreads():
    rng = random.Random(1)
    delays = [next_delay(3, POLICY, rng) for _ in range(200)]
    assert all(10.0 <= d <= 20.0 for d in delays)
    assert max(delays) - min(delays) > 5.0  # a herd of retries is spread out


@pytest.mark.parametrize(("code", "ok", "final"), [
    (200, True, False), (204, True, False), (301, False, True), (400, False, True),
    (410, False, True), (408, False, False), (429, False, False), (500, False, False),
    (503, False, False)])
def test_classify(code, ok, final):
    result = classify(code)
    assert (result.ok, result.final, result.status_code) == (ok, final, code)


def test_verdicts():
    assert verdict(_delivery(1), classify(200), POLICY).status == "delivered"
    assert verdict(_delivery(1), classify(404), POLICY).status == "failed"
    retry = verdict(_delivery(2), AttemptResult(error="refused"), POLICY, random.Random(3))
    assert retry.status == "pending" and 5.0 <= (retry.retry_in_s or 0) <= 10.0
    late = verdict(_delivery(2, window_left_s=4.0), classify(503), POLICY)
    assert late.status == "failed"  # the next try would start after the window


def test_body_adds_webhook_sent_at():
    sent = datetime(2026, 12, 5, 1, 2, 3, tzinfo=UTC)
    out = json.loads(body({"run_id": "r1", "values": {"a": 1}}, sent))
    assert out == {"run_id": "r1", "values": {"a": 1},
                   "webhook_sent_at": "2026-12-05T01:02:03+00:00"}


def test_signature_verifies_with_standardwebhooks_and_fails_when_altered():
    sender = WebhookSender(policy=UrlPolicy(), headers={"X-Team": "a"}, secret=SECRET)
    sent = datetime.now(UTC)
    data = body({"run_id": "r1"}, sent)
    headers = sender.signed_headers("3f1c-id", sent, data)
    assert headers["webhook-id"] == "3f1c-id" and headers["X-Team"] == "a"
    assert Webhook(SECRET).verify(data, headers)["run_id"] == "r1"
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(data.replace(b"r1", b"r2"), headers)


def test_no_secret_sends_unsigned_and_a_bad_secret_is_refused():
    unsigned = WebhookSender(policy=UrlPolicy(), headers={}, secret="")
    assert not unsigned.signed
    assert "webhook-signature" not in unsigned.signed_headers("i", datetime.now(UTC), b"{}")
    assert signer("") is None
    with pytest.raises(ValueError, match="AEGRA_WEBHOOK_SECRET"):
        signer("whsec_@@@not-base64")
