"""What a thread join stream (GET /threads/{id}/stream) sends, from the modes asked for.

The thread modes are the platform's: ``run_modes`` (every event of the thread's runs),
``lifecycle`` (each run's opening ``metadata``, its ``end``/``error`` and the
``run_done`` marker after it) and ``state_update`` (the thread's state, each time it is
written through POST /threads/{id}/state). A run stream mode (``values``, ``updates``,
``messages-tuple``, ...) asks for the runs' events of that mode, plus the lifecycle ones
so a client still sees where each run starts and ends.
"""

from __future__ import annotations

import msgspec

from aegra.domain.errors import Invalid
from aegra.domain.runs import STREAM_MODES

THREAD_MODES = ("run_modes", "lifecycle", "state_update")
LIFECYCLE = frozenset({"metadata"})  # every run filter also passes `end` and `error`


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    """``runs``: the run event names wanted (None: all of them; empty: follow no run);
    ``state_updates``: listen for the thread's state changes."""

    runs: frozenset[str] | None
    state_updates: bool


def plan(modes: list[str], *, field: str) -> Plan:
    """The plan for ``modes`` (none given: ``run_modes``); an unknown mode is Invalid
    naming ``field``, the query parameter it came in."""
    runs: set[str] | None = set()
    for mode in modes or ["run_modes"]:
        if mode not in THREAD_MODES and mode not in STREAM_MODES:
            raise Invalid(f"invalid field '{field}': unknown stream mode {mode!r}; expected "
                          f"one of {sorted((*THREAD_MODES, *STREAM_MODES))}", field=field)
        if mode == "run_modes":
            runs = None
        elif runs is not None and mode != "state_update":
            runs |= LIFECYCLE if mode == "lifecycle" else LIFECYCLE | {mode}
    return Plan(runs=None if runs is None else frozenset(runs),
                state_updates="state_update" in modes)


def run_done(run_id: str) -> bytes:
    """The marker the platform sends once a run of the thread is over."""
    return b"event: metadata\ndata: %s\n\n" % msgspec.json.encode(
        {"status": "run_done", "run_id": run_id})


def thread_event(name: str, data: bytes) -> bytes:
    """A thread-level event's frame. No id: it belongs to no run, and the id a client
    resumes from must stay the last run event's."""
    return b"event: %s\ndata: %s\n\n" % (name.encode(), data)
