"""Webhook delivery: POST the finished run as JSON, with retries and a timeout.

httpx runs on Trio through anyio, so this needs no bridge crossing. Before each attempt
the URL is checked against the policy again and its host resolved, and every address it
resolves to must pass (``domain/webhooks.py``): the check at creation saw only the name.
Redirects are not followed, so a public URL cannot bounce the request inward. Logs show
the URL with its credentials masked.

Not closed: httpx resolves the name once more when it connects, so a DNS server that
answers differently within that instant still wins (pinning the checked address needs
a custom network backend, which httpx does not expose).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

import httpx
import msgspec
import trio

from aegra import logs
from aegra.domain.errors import Invalid
from aegra.domain.webhooks import UrlPolicy, check_addresses, check_url, host_of, mask

log = logs.get_logger("aegra.webhook")
DEFAULT_POLICY = UrlPolicy()


async def resolve(host: str) -> list[str]:
    """Every address ``host`` resolves to now (IP literals come back as themselves)."""
    infos = await trio.socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [str(info[4][0]).split("%", 1)[0] for info in infos]


async def deliver(url: str, payload: dict[str, Any], *, policy: UrlPolicy = DEFAULT_POLICY,
                  headers: Mapping[str, str] | None = None, attempts: int = 3,
                  timeout_s: float = 10.0, backoff_s: float = 1.0) -> bool:
    shown = mask(url)
    body = msgspec.json.encode(payload, enc_hook=str)
    sent = {**(headers or {}), "Content-Type": "application/json",
            "User-Agent": "aegra-webhook"}
    async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client:
        for attempt in range(1, attempts + 1):
            try:
                check_url(url, policy)
                host = host_of(url)
                check_addresses(host, await resolve(host), policy)
            except Invalid as exc:
                log.warning("webhook.refused", url=shown, reason=exc.message,
                            run_id=payload.get("run_id"))
                return False
            except OSError as exc:  # the name does not resolve (now): retried
                error = f"cannot resolve host: {exc}"
            else:
                try:
                    response = await client.post(url, content=body, headers=sent)
                    if response.status_code < 500 and response.status_code != 429:
                        if response.status_code >= 300:  # a redirect is not followed
                            log.warning("webhook.rejected", url=shown,
                                        status=response.status_code)
                        return response.status_code < 300
                    error = f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    error = repr(exc).replace(url, shown)
            log.warning("webhook.retry", url=shown, attempt=attempt, error=error)
            if attempt < attempts:
                await trio.sleep(backoff_s * 2 ** (attempt - 1))
    log.error("webhook.failed", url=shown, run_id=payload.get("run_id"), attempts=attempts)
    return False
