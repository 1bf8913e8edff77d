"""Run lifecycle rules: statuses, multitask decisions, thread status, event ids. Pure.

::

    pending ──claim──► running ──► success | error | timeout | interrupted
    pending ──cancel(interrupt)──► interrupted        (rollback: the row is deleted)

A run paused by ``interrupt()`` or a breakpoint ends ``success``; the *thread* becomes
``interrupted`` (LangGraph Platform's rule, which clients key on).
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Literal

RunStatus = Literal["pending", "running", "success", "error", "timeout", "interrupted"]
ThreadStatus = Literal["idle", "busy", "interrupted", "error"]
MultitaskStrategy = Literal["reject", "interrupt", "rollback", "enqueue"]
CancelAction = Literal["interrupt", "rollback"]
# A run that names no strategy waits its turn behind the thread's current run, as on the
# platform; only an explicit ``reject`` refuses it (409).
DEFAULT_MULTITASK = "enqueue"

TERMINAL: frozenset[str] = frozenset({"success", "error", "timeout", "interrupted"})
INFLIGHT: frozenset[str] = frozenset({"pending", "running"})

# Stream modes a client may ask for, and the LangGraph mode each one needs.
STREAM_MODES: dict[str, str] = {
    "values": "values",
    "updates": "updates",
    "messages": "messages",  # server-side accumulation: messages/metadata|partial|complete
    "messages-tuple": "messages",  # wire event "messages", data [chunk, metadata]
    "custom": "custom",
    "events": "events",  # astream_events(v2); a different driver, costly
    "debug": "debug",
    "tasks": "tasks",
    "checkpoints": "checkpoints",
}


def thread_status_after(*, errored: bool, interrupted: bool, others_pending: bool
                        ) -> ThreadStatus:
    """The thread's status when a run ends (spec §3.2, in this order)."""
    if errored:
        return "error"
    if interrupted:
        return "interrupted"
    if others_pending:
        return "busy"
    return "idle"


def new_run_id() -> str:
    """Time-ordered UUID (version 7) so ids sort by creation, as on the platform."""
    ms = int(time.time() * 1000)
    rand_a = int.from_bytes(os.urandom(2), "big") & 0xFFF
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return str(uuid.UUID(int=value))


def event_id(run_id: str, seq: int) -> str:
    return f"{run_id}_event_{seq}"


def sse_frame(run_id: str, seq: int, name: str, data: bytes) -> bytes:
    """One server-sent event as the spec frames it (the Redis broker's Lua script
    builds the same bytes)."""
    return b"event: %s\ndata: %s\nid: %s\n\n" % (
        name.encode(), data, event_id(run_id, seq).encode())


def parse_event_id(value: str | None) -> int:
    """The sequence number after which a reconnecting client wants events.

    ``None`` or ``-1`` = from the start; ``<run_id>_event_<n>`` or a bare ``n`` = after n.
    Anything else replays everything (a client never loses events by sending junk).
    """
    if value is None:
        return 0
    value = value.strip()
    if value in ("", "-1", "0"):
        return 0
    tail = value.rsplit("_event_", 1)[-1]
    try:
        return max(0, int(tail))
    except ValueError:
        try:
            return max(0, int(value.split("-", 1)[0]))
        except ValueError:
            return 0
