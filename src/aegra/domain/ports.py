"""The ports: what the supervisor and the API need from the outside world (DESIGN §2).

Each has a production adapter (PostgreSQL, Redis, LangGraph on the bridge) and an
in-memory twin in ``aegra.adapters.memory`` for ring-1 tests and single-instance mode.
Nothing asyncio-shaped crosses a port.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import msgspec

from aegra.domain.assistants import Changes, NewAssistant, Page, Query, Row, ThreadCascade
from aegra.domain.auth import Caller, Filter
from aegra.domain.crons import Fired, Firing, NewCron
from aegra.domain.leases import Expired, ReapResult
from aegra.domain.run_rows import Cancelled, Created, NewRun
from aegra.domain.store import Item, Namespace, SearchItem


class ClaimedRun(msgspec.Struct, frozen=True, kw_only=True):
    """A run this worker now owns. ``attempt`` is the fencing token."""

    run_id: str
    thread_id: str
    assistant_id: str
    attempt: int
    params: dict[str, Any]  # execution_params
    metadata: dict[str, Any]
    stateless: bool
    user_id: str | None


class Outcome(msgspec.Struct, kw_only=True):
    """How an execution ended, as the worker reports it to the RunStore."""

    status: str  # success | error | timeout | interrupted
    values: Any = None  # last root values (the /wait payload)
    interrupts: list[dict[str, Any]] = []  # pending root interrupts
    interrupted: bool = False  # paused at interrupt() or a breakpoint
    error: dict[str, str] | None = None  # {"error": type, "message": text}
    cancel_action: str | None = None  # set when the run was cancelled


class StreamEvent(msgspec.Struct, frozen=True):
    seq: int
    name: str
    frame: bytes  # the whole SSE frame, built once when the event was published


# -- run machinery: queue, events, cancels, leases, claims, the graph runner ---------------
# What the worker, heartbeater, reaper, cancel listener and the run service call; each has
# a PostgreSQL/Redis/LangGraph adapter and an in-memory twin (tests/unit/
# test_port_conformance.py holds both to these, under mypy --strict and at run time).

Json = dict[str, Any]  # a JSON object
RunResult = dict[str, Any]  # how a run ended, as waiters get it: {status, values, error}
# What CancelBus.listen returns: opaque to callers, only handed back to stop(). Each
# adapter keeps its own callback there, hence the loose signature.
CancelHandle = Callable[..., None]


@runtime_checkable
class JobQueue(Protocol):
    """Run ids waiting for a worker. Delivery may repeat: the claim decides who runs."""

    async def put(self, run_id: str, *, front: bool = False, delay_s: float = 0.0) -> None: ...
    async def get(self) -> str: ...
    async def depth(self) -> int: ...


@runtime_checkable
class Producer(Protocol):
    """One run's event stream, written on the asyncio side by the graph's task."""

    def emit(self, name: str, data: bytes) -> None:
        """Sync and cheap: numbered and published in order, later if need be."""
        ...

    async def aclose(self) -> None:
        """asyncio side: ship what is still pending. Trio code calls EventBroker.drain."""
        ...


@runtime_checkable
class Subscription(Protocol):
    """Replay after a sequence number, then live; ends after the run's final event.

    Cancel-safe: a cancelled ``__anext__`` loses nothing (the SSE writer times each wait
    out for its keepalive)."""

    @property
    def lagged(self) -> bool:
        """True once the reader fell too far behind and was cut off (it resumes by id)."""
        ...

    def __aiter__(self) -> AsyncIterator[StreamEvent]: ...
    async def __anext__(self) -> StreamEvent: ...

    def receive_nowait(self) -> StreamEvent:
        """The next event if it is already here, else ``trio.WouldBlock``;
        ``trio.EndOfChannel``/``ClosedResourceError`` once it ended."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class EventBroker(Protocol):
    """Per-run replay buffers, live fan-out and completion (with the run's result)."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    def producer(self, run_id: str) -> Producer: ...

    async def reset(self, run_id: str) -> None:
        """A run about to execute again: live again, its events continue."""
        ...

    async def drain(self, producer: Producer) -> None:
        """Wait until everything ``producer`` emitted is published."""
        ...

    async def subscribe(self, run_id: str, after_seq: int) -> Subscription: ...

    async def finish(self, run_id: str, result: RunResult,
                     final: tuple[tuple[str, bytes], ...] = ()) -> None:
        """Publish ``final`` events, then mark the run done with ``result``."""
        ...

    async def result(self, run_id: str) -> tuple[bool, RunResult | None]:
        """``(True, result)`` once the run is done, else ``(False, None)``."""
        ...

    async def wait_done(self, run_id: str) -> RunResult | None:
        """Block until the run is done (pushed, not polled); None: the broker lost
        track (Redis went away) and the caller should look in the database."""
        ...

    async def has(self, run_id: str) -> bool:
        """Does the broker still hold the run's events or result?"""
        ...

    async def touch(self, run_ids: list[str]) -> None:
        """Keep live runs' buffers from expiring, however quiet (each heartbeat)."""
        ...


@runtime_checkable
class CancelBus(Protocol):
    """Cross-instance cancels. Requests are also persisted, so a lost message is re-read
    (the listener after each subscription, the heartbeater every beat)."""

    async def publish(self, run_id: str, action: str) -> None: ...

    async def listen(self, on_cancel: Callable[[str, str], None],
                     on_resync: Callable[[], None]) -> CancelHandle:
        """Subscribe (``StoreUnavailable`` when not confirmed); ``on_resync`` after a
        reconnect, when messages may have been lost."""
        ...

    async def stop(self, handle: CancelHandle) -> None: ...


@runtime_checkable
class LeaseStore(Protocol):
    """Leases on running runs: the heartbeater's and the reaper's side of the run store.
    Lease times are the store's clock; every write is fenced by owner (and attempt)."""

    async def extend(self, owner: str, run_ids: list[str], lease_s: float
                     ) -> dict[str, str | None]:
        """Runs still ours, each with its pending cancel request (or None)."""
        ...

    async def cancel_requests(self, owner: str) -> list[tuple[str, str]]:
        """Open ``(run_id, action)`` cancel requests for runs ``owner`` executes."""
        ...

    async def reap(self, max_retries: int, stuck_pending_s: float) -> ReapResult: ...

    async def settle(self, run: Expired, values: object, message: str | None) -> bool:
        """Finalize an exhausted run: success with ``values`` (``message`` None) or
        error; False when it is no longer expired."""
        ...


@runtime_checkable
class RunClaims(Protocol):
    """The worker's side of the run store: claim, then a fenced finish or hand-back."""

    async def claim(self, run_id: str, owner: str, lease_s: float) -> ClaimedRun | None:
        """None: another worker has it, it is not pending, or its thread is busy."""
        ...

    async def finish(self, claimed: ClaimedRun, owner: str, outcome: Outcome,
                     thread_values: object, thread_interrupts: Json
                     ) -> tuple[bool, str | None]:
        """``(written, the thread's next pending run)``; not written when fenced."""
        ...

    async def release(self, claimed: ClaimedRun, owner: str) -> bool:
        """Pending again with no retry spent (drain); False when fenced."""
        ...


@runtime_checkable
class GraphRunner(Protocol):
    """Executes claimed runs and reads their graphs' checkpoints. Values are the graph's
    state as JSON-compatible data, opaque to the run machinery."""

    async def execute(self, claimed: ClaimedRun, producer: Producer
                      ) -> tuple[Outcome, object, Json]:
        """``(outcome, thread values, thread interrupts by task)``."""
        ...

    async def finished(self, graph_id: str | None, thread_id: str, run_id: str
                       ) -> tuple[bool, object]:
        """``(True, output)`` when this run's last checkpoint shows its graph done."""
        ...

    async def thread_view(self, graph_id: str, thread_id: str
                          ) -> tuple[object, Json, bool]:
        """Latest values, pending interrupts by task, whether nodes are left to run."""
        ...


class Probe(Protocol):
    """A component ``/health`` and ``/ready`` check (PostgreSQL, LangGraph's pool, Redis)."""

    async def ping(self) -> None: ...


class Authorizer(Protocol):
    """The ``@auth.on`` handlers: allow (None), a filter to apply inside the query, or
    raise (Forbidden / AuthFailed). ``value`` is mutable: a handler may stamp metadata or
    rewrite a store namespace, and the service uses the edited value."""

    enabled: bool

    async def authorize(self, caller: Caller, resource: str, action: str,
                        value: dict[str, Any]) -> Filter | None: ...


class Authenticator(Protocol):
    """The ``@auth.authenticate`` handler behind the HTTP edge. ``scope`` is the raw ASGI
    scope; ``body`` (parsed JSON) is only read when the handler asks for it."""

    @property
    def wants_body(self) -> bool: ...

    async def authenticate(self, scope: Mapping[str, Any], *, body: object = None,
                           request: object = None, path_params: dict[str, str] | None = None
                           ) -> Caller: ...


# -- assistants ---------------------------------------------------------------------------
class AssistantStore(Protocol):
    """Assistants and their immutable versions, scoped to the graphs this server serves.

    ``where`` is the caller's authorization filter on the assistant's metadata, applied
    inside the query: a row it excludes is NotFound, exactly like a missing one.
    """

    async def get(self, assistant_id: str, *, where: Filter | None = None) -> Row: ...

    async def create(self, new: NewAssistant, *, where: Filter | None = None
                     ) -> tuple[Row | None, bool]:
        """``(row, True)`` created (with version 1); ``(row, False)`` the id exists and
        passes ``where``; ``(None, False)`` it exists but ``where`` hides it."""
        ...

    async def patch(self, assistant_id: str, changes: Changes, *,
                    where: Filter | None = None) -> Row:
        """Add version max+1 from the current one plus ``changes``; make it current."""
        ...

    async def set_latest(self, assistant_id: str, version: int, *,
                         where: Filter | None = None) -> Row: ...

    async def in_flight_runs(self, assistant_id: str, *, where: Filter | None = None
                             ) -> list[str]:
        """Ids of its pending/running runs; NotFound when the assistant is not visible."""
        ...

    async def delete(self, assistant_id: str, *, where: Filter | None = None,
                     threads: list[ThreadCascade] | None = None) -> list[str]:
        """Delete it (versions, crons, runs cascade) and the threads ``threads`` names;
        returns the deleted thread ids (their checkpoints are the caller's to drop)."""
        ...

    async def thread_ids(self, assistant_id: str) -> list[str]:
        """Threads whose metadata names the assistant (candidates for a cascade)."""
        ...

    async def search(self, query: Query, page: Page, *, where: Filter | None = None
                     ) -> tuple[list[Row], int | None]:
        """One page and the next offset (None on the last page)."""
        ...

    async def count(self, query: Query, *, where: Filter | None = None) -> int: ...

    async def versions(self, assistant_id: str, *, metadata: dict[str, Any] | None,
                       limit: int, offset: int, where: Filter | None = None) -> list[Row]:
        """Newest first; NotFound only when the assistant itself is not visible."""
        ...


class GraphCatalog(Protocol):
    """The graphs of ``aegra.json``, as far as assistants need them."""

    def ids(self) -> list[str]: ...
    def __contains__(self, graph_id: object) -> bool: ...
    async def drawing(self, graph_id: str, config: dict[str, Any] | None,
                      xray: bool | int) -> dict[str, Any]: ...
    async def schemas(self, graph_id: str, config: dict[str, Any] | None = None
                      ) -> dict[str, Any]: ...
    async def subgraphs(self, graph_id: str, config: dict[str, Any] | None,
                        namespace: str | None, recurse: bool) -> dict[str, Any]: ...
    async def delete_checkpoints(self, thread_ids: list[str]) -> None: ...


class RunCanceller(Protocol):
    """Stops runs already chosen by the caller (no authorization of its own)."""

    async def cancel(self, run_ids: list[str], action: str) -> None: ...


# -- threads ------------------------------------------------------------------------------
class ThreadStore(Protocol):
    """Thread rows: metadata, TTL and the cached latest state (SDK ``Thread`` dicts).

    ``where`` is the caller's authorization filter on the thread's metadata, applied
    inside the query: a row it excludes is NotFound (or skipped, for the bulk methods),
    exactly like a missing one.
    """

    async def create(self, thread_id: str, metadata: dict[str, Any],
                     ttl: dict[str, Any] | None, if_exists: str, *,
                     where: Filter | None = None) -> tuple[dict[str, Any], bool]:
        """``(thread, created)``. An existing id is a Conflict unless ``if_exists`` is
        ``do_nothing`` and the row passes ``where`` (then it is returned as is)."""
        ...

    async def row(self, thread_id: str, *, where: Filter | None = None) -> dict[str, Any]:
        """The raw row plus ``active_run`` (a pending/running run exists)."""
        ...

    async def get(self, thread_id: str, *, include_ttl: bool = False,
                  where: Filter | None = None) -> dict[str, Any]: ...

    async def patch(self, thread_id: str, metadata: dict[str, Any] | None,
                    ttl: dict[str, Any] | None, *, where: Filter | None = None
                    ) -> dict[str, Any]:
        """Merge ``metadata`` into the top-level keys; replace the TTL when given."""
        ...

    async def delete(self, thread_ids: list[str], *, where: Filter | None = None
                     ) -> list[str]:
        """Delete threads with their checkpoints (runs and crons cascade); the ids gone."""
        ...

    async def existing(self, thread_ids: list[str], *, where: Filter | None = None
                       ) -> list[str]: ...

    async def copy(self, source_id: str, new_id: str, *, where: Filter | None = None,
                   metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        """A new row from the source's (``metadata`` replaces the source's when given)."""
        ...

    async def set_state(self, thread_id: str, values: object, interrupts: dict[str, Any],
                        has_next: bool, *, where: Filter | None = None) -> None:
        """Refresh the cached state after a state write and recompute the status."""
        ...

    async def search(self, *, metadata: dict[str, Any] | None,
                     values: dict[str, Any] | None, status: str | None,
                     ids: list[str] | None, limit: int, offset: int, sort_by: str | None,
                     sort_order: str | None, columns: list[str] | None,
                     where: Filter | None = None) -> tuple[list[dict[str, Any]], bool]:
        """``(page, whether another page follows)``."""
        ...

    async def count(self, *, metadata: dict[str, Any] | None,
                    values: dict[str, Any] | None, status: str | None,
                    where: Filter | None = None) -> int: ...


class ThreadStates(Protocol):
    """A thread's checkpoints and the states a graph reads from them (LangGraph's side).

    ``open_config`` is what the graph (factory) is opened with; ``config`` is the call's
    ``{"configurable": ...}``. States are SDK ``ThreadState`` dicts; ``summary`` is what
    the thread row caches: ``{values, interrupts, has_next}``. A graph's refusal of an
    update is BadRequest.
    """

    async def get_state(self, graph_id: str, config: dict[str, Any], *,
                        open_config: dict[str, Any], subgraphs: bool
                        ) -> dict[str, Any] | None:
        """The state, or None when the thread has no checkpoint at all."""
        ...

    async def update_state(self, graph_id: str, config: dict[str, Any], *,
                           open_config: dict[str, Any], values: object, as_node: str | None
                           ) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(new checkpoint's configurable, summary)``."""
        ...

    async def bulk_update(self, graph_id: str, config: dict[str, Any], *,
                          open_config: dict[str, Any], supersteps: list[list[dict[str, Any]]]
                          ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Supersteps of ``{values, command, as_node}``: ``(checkpoint, summary)``."""
        ...

    async def history(self, graph_id: str, config: dict[str, Any], *,
                      open_config: dict[str, Any], limit: int, before: str | None,
                      metadata: dict[str, Any] | None) -> list[dict[str, Any]]: ...

    async def copy_checkpoints(self, source_id: str, target_id: str) -> None: ...
    async def delete_checkpoints(self, thread_ids: list[str]) -> None: ...
    async def prune_keep_latest(self, thread_ids: list[str]) -> None: ...


class ActiveRuns(Protocol):
    """Which runs of a thread are still pending or running (no authorization)."""

    async def inflight(self, *, thread_id: str | None = None) -> list[str]: ...


# --- store: long-term memory items ------------------------------------------------------


class StoreItems(Protocol):
    """Items by (namespace, key). ``filter`` is the store's item filter
    (``domain.store``), already AND-ed with any authorization filter; no authorization
    happens here. ``ttl`` is in minutes."""

    semantic: bool  # whether ``query`` in search ranks by embeddings

    async def put(self, namespace: Namespace, key: str, value: dict[str, Any], *,
                  index: bool | list[str] | None, ttl: float | None) -> None: ...

    async def get(self, namespace: Namespace, key: str, *,
                  refresh_ttl: bool | None) -> Item | None: ...

    async def delete(self, namespace: Namespace, key: str) -> None: ...

    async def search(self, prefix: Namespace, *, filter: dict[str, Any] | None, limit: int,
                     offset: int, query: str | None,
                     refresh_ttl: bool | None) -> list[SearchItem]: ...

    async def list_namespaces(self, *, prefix: Namespace | None, suffix: Namespace | None,
                              max_depth: int | None, limit: int,
                              offset: int) -> list[list[str]]: ...


# -- crons --------------------------------------------------------------------------------
class CronStore(Protocol):
    """Crons and the runs they make (rows as dicts in ``domain.crons.COLUMNS``, raw
    timestamps). ``where`` is the caller's authorization filter on the cron's metadata,
    applied inside the query: a cron it excludes is NotFound (or not counted), exactly
    like a missing one."""

    async def assistant(self, value: str) -> dict[str, Any]:
        """The assistant a cron names (its id or its graph's id): assistant_id, graph_id,
        config, context, metadata; NotFound otherwise."""
        ...

    async def create(self, new: NewCron, first_run: NewRun | None, *, max_per_user: int,
                     assistant_where: Filter | None = None,
                     thread_where: Filter | None = None
                     ) -> tuple[dict[str, Any], Created | None]:
        """The cron and its first run, in one transaction: TooMany past ``max_per_user``
        (0: no cap) crons of ``new.user_id``; NotFound when ``assistant_where`` hides the
        assistant or ``thread_where`` the thread (or it does not exist)."""
        ...

    async def get(self, cron_id: str, *, where: Filter | None = None) -> dict[str, Any]: ...

    async def update(self, cron_id: str, patch: Callable[[dict[str, Any]], dict[str, Any]],
                     *, where: Filter | None = None) -> dict[str, Any]:
        """``patch`` (pure) maps the locked row to the columns to change."""
        ...

    async def delete(self, cron_id: str, *, where: Filter | None = None) -> None: ...

    async def search(self, *, assistant_id: str | None, thread_id: str | None,
                     enabled: bool | None, metadata: dict[str, Any] | None, limit: int,
                     offset: int, sort_by: str, sort_order: str,
                     where: Filter | None = None, thread_where: Filter | None = None
                     ) -> list[dict[str, Any]]:
        """``thread_where`` filters thread-bound crons by their thread's metadata."""
        ...

    async def count(self, *, assistant_id: str | None, thread_id: str | None,
                    enabled: bool | None, metadata: dict[str, Any] | None,
                    where: Filter | None = None, thread_where: Filter | None = None
                    ) -> int: ...

    async def fire_due(self, plan: Callable[[dict[str, Any]], Firing], limit: int) -> Fired:
        """Claim up to ``limit`` due crons, make the runs ``plan`` decides and advance
        them, in one transaction (no authorization: the ticker fires as each owner)."""
        ...


# -- runs ---------------------------------------------------------------------------------
class AssistantLookup(msgspec.Struct, kw_only=True):
    """Resolve a run's assistant inside the create transaction (one round trip and one
    transaction less than a lookup before it): ``build`` turns the assistant row into
    the run's execution parameters."""

    assistant_id: str  # canonical: a graph id already mapped to its default assistant
    graph_ids: list[str]  # only assistants of graphs this server has
    missing: Exception  # raised when there is no such assistant
    build: Callable[[Json], Json]


class GraphIds(Protocol):
    """The graphs this server serves (a run's assistant must belong to one)."""

    def ids(self) -> list[str]: ...
    def __contains__(self, graph_id: object) -> bool: ...


@runtime_checkable
class RunStore(Protocol):
    """Run rows as the run service needs them (rows as dicts, raw timestamps).

    ``where`` is the caller's authorization filter on the run's *thread* metadata,
    applied inside the query: a run it excludes is NotFound (or skipped, for the bulk
    methods), exactly like a missing one. None: no predicate at all.
    """

    async def create_as(self, new: NewRun, lookup: AssistantLookup, *,
                        thread_filter: Filter | None = None,
                        assistant_filter: Filter | None = None,
                        thread_metadata: dict[str, Any] | None = None) -> Created:
        """Create the run in one transaction: an existing thread must pass
        ``thread_filter`` and a user assistant ``assistant_filter`` (NotFound otherwise);
        a thread made for the run gets ``thread_metadata`` over its own."""
        ...

    async def assistant(self, lookup: AssistantLookup) -> dict[str, Any]:
        """The assistant row with its metadata; ``lookup.missing`` when there is none."""
        ...

    async def get(self, run_id: str, thread_id: str | None = None, *,
                  where: Filter | None = None) -> dict[str, Any]: ...

    async def find(self, run_id: str, thread_id: str | None = None, *,
                   where: Filter | None = None) -> dict[str, Any] | None: ...

    async def inflight(self, *, thread_id: str | None = None, run_ids: list[str] | None = None,
                       status: str | None = None, where: Filter | None = None) -> list[str]: ...

    async def delete(self, thread_id: str, run_id: str, *, where: Filter | None = None
                     ) -> None: ...

    async def thread_visible(self, thread_id: str, *, where: Filter | None = None
                             ) -> bool: ...

    async def stream_start(self, thread_id: str, *, where: Filter | None = None
                           ) -> datetime:
        """The database's now() if the thread is there (and passes ``where``)."""
        ...

    async def next_runs(self, thread_id: str, after_created: datetime | None,
                        since: datetime) -> list[dict[str, Any]]: ...

    async def request_cancel(self, run_ids: list[str], action: str) -> Cancelled:
        """Pending runs settle here and now; running ones get a persisted request."""
        ...

    async def refresh_thread(self, thread_id: str, values: object, interrupts: Json,
                             paused: bool) -> None: ...

    async def next_pending(self, thread_id: str) -> str | None: ...

    # Last: below it, ``list`` in an annotation would name this method.
    async def list(self, thread_id: str, *, limit: int, offset: int, status: str | None,
                   where: Filter | None = None) -> list[dict[str, Any]]: ...
