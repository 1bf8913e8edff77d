"""The ports: what the supervisor and the API need from the outside world
(docs/architecture.md, Layers).

Each has a production adapter (PostgreSQL, Redis, LangGraph on the bridge) and an
in-memory twin in ``aegra.adapters.memory`` for ring-1 tests and single-instance mode.
Nothing asyncio-shaped crosses a port.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import msgspec

from aegra.domain.auth import Caller, Filter
from aegra.domain.leases import Expired, ReapResult
from aegra.domain.run_rows import Cancelled, Created, NewRun


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
    queue_wait_s: float = 0.0  # from creation (or the scheduled start) to this claim


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
# A thread-level event's receiver, ``(name, data)``: called in Trio's thread, must not
# block. What listen_thread returns is opaque, only handed back to unlisten_thread.
ThreadSink = Callable[[str, bytes], None]
ThreadHandle = Callable[..., None]


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
    """Per-run replay buffers, live fan-out and completion (with the run's result); and
    thread-level events (``state_update``), live only, for thread join streams."""

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

    async def publish_thread(self, thread_id: str, name: str, data: bytes) -> None:
        """Hand an event to every sink listening on the thread, on every instance, in
        publishing order. Nothing is kept: a sink registered later never sees it."""
        ...

    async def listen_thread(self, thread_id: str, sink: ThreadSink) -> ThreadHandle:
        """Register ``sink``; it gets what is published from now on. Returns the handle
        to pass to ``unlisten_thread``."""
        ...

    async def unlisten_thread(self, thread_id: str, handle: ThreadHandle) -> None: ...


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
