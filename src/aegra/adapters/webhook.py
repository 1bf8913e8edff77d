"""Webhook delivery: POST the finished run as JSON, with retries and a timeout.

httpx runs on Trio through anyio, so this needs no bridge crossing.
"""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
import trio

from aegra import logs

log = logs.get_logger("aegra.webhook")


async def deliver(url: str, payload: dict[str, Any], *, attempts: int = 3,
                  timeout_s: float = 10.0, backoff_s: float = 1.0) -> bool:
    body = msgspec.json.encode(payload, enc_hook=str)
    headers = {"Content-Type": "application/json", "User-Agent": "aegra-webhook"}
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        for attempt in range(1, attempts + 1):
            try:
                response = await client.post(url, content=body, headers=headers)
                if response.status_code < 500 and response.status_code != 429:
                    if response.status_code >= 400:
                        log.warning("webhook.rejected", url=url, status=response.status_code)
                    return response.status_code < 400
                error = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                error = repr(exc)
            log.warning("webhook.retry", url=url, attempt=attempt, error=error)
            if attempt < attempts:
                await trio.sleep(backoff_s * 2 ** (attempt - 1))
    log.error("webhook.failed", url=url, run_id=payload.get("run_id"), attempts=attempts)
    return False
