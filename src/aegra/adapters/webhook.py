"""Webhook sending: one signed POST of a delivery's body, with a timeout.

httpx runs on Trio through anyio, so this needs no bridge crossing. Before each attempt
the URL is checked against the policy again and its host resolved, and every address it
resolves to must pass (``domain/webhooks.py``): the check at creation saw only the name.
Redirects are not followed, so a public URL cannot bounce the request inward. Logs show
the URL with its credentials masked.

Signing follows Standard Webhooks (``standardwebhooks`` package): ``webhook-id`` is the
delivery's id (stable over its attempts), ``webhook-timestamp`` the attempt's time,
``webhook-signature`` ``v1,<base64 HMAC-SHA256>`` over ``id.timestamp.body`` with the
``AEGRA_WEBHOOK_SECRET`` (``whsec_...``). Without a secret the id and timestamp are still
sent, unsigned.

Not closed: httpx resolves the name once more when it connects, so a DNS server that
answers differently within that instant still wins (pinning the checked address needs
a custom network backend, which httpx does not expose).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from datetime import UTC, datetime

import httpx
import trio
from standardwebhooks import Webhook

from aegra import logs
from aegra.domain.errors import Invalid
from aegra.domain.webhook_outbox import AttemptResult, Delivery, body, classify
from aegra.domain.webhooks import UrlPolicy, check_addresses, check_url, host_of, mask

log = logs.get_logger("aegra.webhook")


async def resolve(host: str) -> list[str]:
    """Every address ``host`` resolves to now (IP literals come back as themselves)."""
    infos = await trio.socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [str(info[4][0]).split("%", 1)[0] for info in infos]


def signer(secret: str) -> Webhook | None:
    """The Standard Webhooks signer for ``secret`` (``whsec_`` + base64); None if empty.
    ValueError names what is wrong with it."""
    if not secret:
        return None
    try:
        return Webhook(secret)
    except Exception as exc:  # binascii.Error, EmptyWebhookSecretError: one message
        raise ValueError("AEGRA_WEBHOOK_SECRET must be 'whsec_' followed by base64 "
                         f"({type(exc).__name__})") from None


class WebhookSender:
    """Sends one attempt of a delivery under the project's URL policy and headers."""

    def __init__(self, *, policy: UrlPolicy, headers: Mapping[str, str],
                 secret: str = "", timeout_s: float = 10.0) -> None:
        self.policy = policy
        self.headers = dict(headers)
        self.webhook = signer(secret)
        self.timeout_s = timeout_s

    @property
    def signed(self) -> bool:
        return self.webhook is not None

    def signed_headers(self, delivery_id: str, sent_at: datetime, data: bytes
                       ) -> dict[str, str]:
        out = {**self.headers, "Content-Type": "application/json",
               "User-Agent": "aegra-webhook", "webhook-id": delivery_id,
               "webhook-timestamp": str(int(sent_at.timestamp()))}
        if self.webhook is not None:
            out["webhook-signature"] = self.webhook.sign(delivery_id, sent_at, data)
        return out

    async def __call__(self, delivery: Delivery) -> AttemptResult:
        url, shown = delivery.url, mask(delivery.url)
        try:
            check_url(url, self.policy)
            host = host_of(url)
            check_addresses(host, await resolve(host), self.policy)
        except Invalid as exc:
            log.warning("webhook.refused", url=shown, reason=exc.message,
                        run_id=delivery.run_id)
            return AttemptResult(error=f"refused: {exc.message}", final=True)
        except OSError as exc:  # the name does not resolve (now): retried
            return AttemptResult(error=f"cannot resolve host: {exc}")
        sent_at = datetime.now(UTC)
        data = body(delivery.payload, sent_at)
        headers = self.signed_headers(delivery.id, sent_at, data)
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s,
                                         follow_redirects=False) as client:
                response = await client.post(url, content=data, headers=headers)
        except httpx.HTTPError as exc:
            return AttemptResult(error=repr(exc).replace(url, shown)[:500])
        return classify(response.status_code)
