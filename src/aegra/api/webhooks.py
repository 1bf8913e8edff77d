"""Webhook delivery log and redeliver (issue 13; not in LangGraph Platform's API).

``GET .../runs/{run_id}/webhooks``: the run's deliveries (webhook-id, status, next try)
with every attempt (time, status code, error). ``POST .../webhooks/redeliver``: send it
again with the same webhook-id (receivers deduplicate on it). Both under the thread and
by run id alone; a run the caller may not see is 404. docs/webhooks.md.
"""

from __future__ import annotations

from quart import Blueprint, Response

from aegra.api.auth import caller
from aegra.api.deps import services
from aegra.api.openapi import documented
from aegra.api.wire import json
from aegra.services import webhooks

bp = Blueprint("webhooks", __name__)


@bp.get("/threads/<thread_id>/runs/<run_id>/webhooks")
@documented(tag="webhooks")
async def thread_run_deliveries(thread_id: str, run_id: str) -> Response:
    """The run's webhook deliveries and their attempts."""
    return json(await webhooks.deliveries(services().runs, caller(), thread_id, run_id))


@bp.get("/runs/<run_id>/webhooks")
@documented(tag="webhooks")
async def run_deliveries(run_id: str) -> Response:
    """The run's webhook deliveries and their attempts (by run id alone)."""
    return json(await webhooks.deliveries(services().runs, caller(), None, run_id))


@bp.post("/threads/<thread_id>/runs/<run_id>/webhooks/redeliver")
@documented(tag="webhooks", status=202)
async def thread_run_redeliver(thread_id: str, run_id: str) -> Response:
    """Deliver the run's webhook again, with the same webhook-id."""
    return json(await webhooks.redeliver(services().runs, caller(), thread_id, run_id),
                status=202)


@bp.post("/runs/<run_id>/webhooks/redeliver")
@documented(tag="webhooks", status=202)
async def run_redeliver(run_id: str) -> Response:
    """Deliver the run's webhook again, with the same webhook-id (by run id alone)."""
    return json(await webhooks.redeliver(services().runs, caller(), None, run_id),
                status=202)
