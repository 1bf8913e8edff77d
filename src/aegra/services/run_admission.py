"""Interrupt-safe admission of a run on a thread (rules: domain/interrupt_admission.py).

Called by ``RunService.create`` after authorization, before the run's transaction: the
thread row is read through the caller's filter, so a thread the caller may not see is
never reported as waiting (run creation then answers NotFound as usual). The read is not
inside the create transaction (the one-round-trip ``aegra_create_run`` cannot take it);
a thread can only become interrupted in between if a run is in flight on it, and a run
queued behind one is checked here, at admission, only (docs/human-in-the-loop.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aegra.domain import interrupt_admission as rules
from aegra.domain.auth import Filter
from aegra.domain.thread_reports import ThreadReports


async def admit(reports: ThreadReports | None, default: rules.Mode, thread_id: str | None,
                body: Mapping[str, Any], headers: rules.Headers, where: Filter | None
                ) -> None:
    """Refuse (InterruptPending, 409) a run that would discard a pending interrupt when
    the request's mode is ``require_resume``; a bad header value is Invalid (422)."""
    mode = rules.mode(default, headers)
    if (mode == "allow" or thread_id is None or reports is None
            or rules.leaves_interrupts_alone(body)):
        return
    state = await reports.interrupt_state(thread_id, where=where)
    if state is not None:
        rules.check(thread_id, *state)
