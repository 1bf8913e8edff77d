"""A new run: what callers ask the run store for (``NewRun``), what creating it returns
(``Created``, ``Cancelled``), and ``run_row``, the one builder of a new run row. Pure.

A run is written by three paths: the one-round-trip function ``aegra_create_run``
(migration 0001) for the common case, the full transaction in
``aegra.adapters.postgres.runs`` for the rest, and the cron ticker's set-based insert of
a pass's stateless firings (``aegra.adapters.postgres.crons``). All three write the
values ``run_row`` returns and nothing else, so a run reads the same whichever path made
it (tests/integration/test_run_row_paths.py pins that).
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from aegra.domain.runs import DEFAULT_MULTITASK, new_run_id


class NewRun(msgspec.Struct, kw_only=True):
    thread_id: str | None  # None: stateless, a new thread is made
    assistant_id: str
    graph_id: str
    params: dict[str, Any]
    metadata: dict[str, Any] = {}
    multitask_strategy: str = DEFAULT_MULTITASK
    if_not_exists: str = "reject"
    after_seconds: float = 0
    user_id: str | None = None
    stateless: bool = False
    cron_id: str | None = None
    run_id: str | None = None
    # Extra metadata for a thread made for the run (a cron firing's ownership stamp).
    thread_metadata: dict[str, Any] = {}


class Cancelled(msgspec.Struct, kw_only=True):
    running: list[str] = []  # still executing somewhere: signal their CancelScopes
    settled: list[str] = []  # were pending: already interrupted (or deleted) here
    action: str = "interrupt"


class Created(msgspec.Struct, kw_only=True):
    run: dict[str, Any]
    cancelled: Cancelled
    assistant: dict[str, Any] | None = None  # the assistant row read, for the cache


class RunRow(msgspec.Struct, frozen=True, kw_only=True):
    """The column values of a new run (status ``pending``), and of the thread made for it
    when there is none yet (status ``busy``, owned by the run's user)."""

    run_id: str
    thread_id: str
    assistant_id: str
    graph_id: str
    cron_id: str | None
    multitask_strategy: str
    metadata: dict[str, Any]
    execution_params: dict[str, Any]
    user_id: str | None
    stateless: bool
    after_s: float  # available_at = now() + after_s
    # A thread's runs tag it with their graph and assistant; the thread's own keys win.
    thread_metadata: dict[str, Any]


def run_row(new: NewRun) -> RunRow:
    """The row ``new`` becomes; ids not given yet are made here."""
    return RunRow(
        run_id=new.run_id or new_run_id(), thread_id=new.thread_id or str(uuid.uuid4()),
        assistant_id=new.assistant_id, graph_id=new.graph_id, cron_id=new.cron_id,
        multitask_strategy=new.multitask_strategy, metadata=new.metadata,
        execution_params=new.params, user_id=new.user_id, stateless=new.stateless,
        after_s=float(new.after_seconds),
        thread_metadata={**new.thread_metadata, "graph_id": new.graph_id,
                         "assistant_id": new.assistant_id})
