"""The ports: what the supervisor and the API need from the outside world (DESIGN §2).

Each has a production adapter (PostgreSQL, Redis, LangGraph on the bridge) and an
in-memory twin in ``aegra.adapters.memory`` for ring-1 tests and single-instance mode.
Nothing asyncio-shaped crosses a port.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

import msgspec

from aegra.domain.auth import Caller, Filter


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


class JobQueue(Protocol):
    async def put(self, run_id: str, *, front: bool = False, delay_s: float = 0.0) -> None: ...
    async def get(self) -> str: ...
    async def depth(self) -> int: ...


class Subscription(Protocol):
    def __aiter__(self) -> AsyncIterator[StreamEvent]: ...
    async def aclose(self) -> None: ...


class EventBroker(Protocol):
    def producer(self, run_id: str) -> Any:
        """An asyncio-side producer: ``emit(name, data_bytes)`` (sync), ``await aclose()``."""
    async def subscribe(self, run_id: str, after_seq: int) -> Subscription: ...
    async def is_done(self, run_id: str) -> bool: ...
    async def mark_done(self, run_id: str) -> None: ...
    async def wait_done(self, run_id: str) -> None: ...


class CancelBus(Protocol):
    async def publish(self, run_id: str, action: str) -> None: ...


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

    wants_body: bool

    async def authenticate(self, scope: Mapping[str, Any], *, body: Any = None,
                           request: Any = None, path_params: dict[str, str] | None = None
                           ) -> Caller: ...
