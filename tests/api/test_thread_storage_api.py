"""GET /threads/{id}/storage at the edge: the id is checked first (422 naming it); a server
without PostgreSQL checkpoint tables (the in-memory services) answers 501 as the platform
does with a custom checkpointer. The real report is pinned end to end
(tests/e2e/test_interrupt_admission.py)."""

from __future__ import annotations

import uuid
from typing import Any


async def test_storage_checks_the_id_then_reports_501_without_pg_tables(make_api: Any
                                                                        ) -> None:
    api = await make_api()
    status, body = await api.call("GET", "/threads/nope/storage")
    assert (status, body["field"]) == (422, "thread_id")
    status, body = await api.call("GET", f"/threads/{uuid.uuid4()}/storage")
    assert status == 501 and "built-in checkpointer" in body["detail"]
