"""Replay buffer caps: a run keeps its newest events; a joiner asking for older ones is
told how many it will not get.

The notice is an SSE event of its own name, ``events_dropped``: the SDKs hand unknown
event names to the caller as one more stream part and do not end the stream on it
(``error`` would: the Python SDK treats ``end`` and ``error`` as the end of the run). Its
id is the last dropped event's, so a client that reconnects with it resumes at the first
kept event instead of being told again.
"""

from __future__ import annotations

import msgspec

from aegra.domain.ports import StreamEvent
from aegra.domain.runs import sse_frame

DROPPED = "events_dropped"


def dropped_notice(run_id: str, after_seq: int, first_kept: int) -> StreamEvent | None:
    """The notice for a joiner that asked for events after ``after_seq`` when the buffer
    starts at ``first_kept``; None when nothing it asked for was dropped."""
    missing = first_kept - 1 - after_seq
    if missing <= 0:
        return None
    data = msgspec.json.encode({"dropped": missing, "first_seq": first_kept})
    return StreamEvent(first_kept - 1, DROPPED, sse_frame(run_id, first_kept - 1, DROPPED, data))
