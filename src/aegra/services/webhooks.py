"""The webhook delivery log and redeliver, for callers who may see the run.

Authorized on the run's thread like the run itself (spec/auth.md item 10): reading the
log takes ``threads.read``, redelivering ``threads.update`` (as cancelling does); the
filter applies inside the query and a run it hides is NotFound, so the log never tells
that a run exists. A stateless run whose thread is gone after it finished has no thread
to authorize against: its log is served (by run id) only to a caller whose read is not
filtered.
URLs are shown with their credentials masked.
"""

from __future__ import annotations

from typing import Any

from aegra.domain.auth import Caller
from aegra.domain.errors import NotFound
from aegra.domain.webhook_outbox import WebhookOutbox
from aegra.domain.webhooks import mask
from aegra.services.runs import RunService


async def _visible(service: RunService, caller: Caller, action: str,
                   thread_id: str | None, run_id: str) -> WebhookOutbox:
    if service.webhooks is None:
        raise NotFound(f"Run {run_id} not found")
    flt = None
    if service.auth is not None:
        flt = await service.auth.authorize(caller, "threads", action,
                                           {"thread_id": thread_id, "run_id": run_id})
    row = await service.runs.find(run_id, where=flt)
    if row is not None and thread_id in (None, row["thread_id"]):
        return service.webhooks
    if row is None and flt is None and thread_id is None:
        return service.webhooks  # a finished stateless run: its thread went with it
    raise NotFound(f"Run {run_id} not found")


def _shown(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**row, "url": mask(row["url"])} for row in rows]


async def deliveries(service: RunService, caller: Caller, thread_id: str | None,
                     run_id: str) -> list[dict[str, Any]]:
    """The run's webhook deliveries with their attempts; [] when it has none."""
    outbox = await _visible(service, caller, "read", thread_id, run_id)
    rows = await outbox.log(run_id)
    if not rows and thread_id is None and await service.runs.find(run_id) is None:
        raise NotFound(f"Run {run_id} not found")
    return _shown(rows)


async def redeliver(service: RunService, caller: Caller, thread_id: str | None,
                    run_id: str) -> list[dict[str, Any]]:
    """Send the run's webhook again (same webhook-id, a fresh retry window)."""
    outbox = await _visible(service, caller, "update", thread_id, run_id)
    rows = await outbox.redeliver(run_id)
    if not rows:
        raise NotFound(f"Run {run_id} has no webhook delivery")
    return _shown(rows)
