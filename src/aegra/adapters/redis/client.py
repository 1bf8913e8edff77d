"""Redis connection (redis-py asyncio client), and the one table that maps its errors.

Every Redis adapter (``broker``, ``fanout``, ``queue``, ``cancel``) maps library errors
here and nowhere else (STYLE §3, §5)::

    redis ConnectionError (refused, reset, "closed by server",   -> StoreUnavailable
      BusyLoadingError), redis TimeoutError, OSError, TimeoutError
    ReadOnlyError, OutOfMemoryError, ClusterDownError,           -> StoreUnavailable
      TryAgainError, ResponseError "MISCONF/BUSY/NOREPLICAS ..."
      and Redis 6's "... -OOM ..." from inside a script
      (up, but refusing to serve now)
    asyncio.CancelledError on the Trio side: trio-asyncio turns  -> StoreUnavailable
      our own cancellation into trio.Cancelled, so an asyncio
      one means the asyncio side gave up (a dropped connection)
    anything else (WRONGTYPE, a Lua error: a bug)                -> passes unchanged

The fallback policy is here too: ``FALLBACKS`` lists every operation whose Redis failure
is *not* an error and what serves instead; every other operation raises
``StoreUnavailable``. An adapter applies a fallback only through ``best_effort`` (or
``fell_back`` where the fallback is more than a default value), which logs one
``redis.fallback`` warning naming the operation, the error and the fallback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final, TypeVar

import redis.asyncio as aioredis
from redis import exceptions as rex

from aegra import logs
from aegra.adapters.aio import aio
from aegra.domain.errors import StoreUnavailable

log = logs.get_logger("aegra.redis")
T = TypeVar("T")

_UNAVAILABLE: Final[tuple[type[BaseException], ...]] = (
    rex.ConnectionError,  # includes BusyLoadingError, AuthenticationError
    rex.TimeoutError,
    OSError,  # includes the builtin TimeoutError (asyncio.timeout) and ConnectionError
    rex.ReadOnlyError,  # a replica, or a primary demoted under us
    rex.OutOfMemoryError,
    rex.ClusterDownError,  # includes MasterDownError
    rex.TryAgainError,
)
# Error codes of a server that is up but refuses to serve now (not a bug of ours).
_REFUSALS: Final = ("OOM", "READONLY", "MISCONF", "LOADING", "BUSY", "MASTERDOWN",
                    "CLUSTERDOWN", "TRYAGAIN", "NOREPLICAS")
_CAUGHT: Final[tuple[type[BaseException], ...]] = (
    *_UNAVAILABLE, rex.ResponseError, asyncio.CancelledError)

# The fallback policy: operation -> what serves instead when Redis cannot. An operation
# not listed here raises StoreUnavailable.
FALLBACKS: Final[Mapping[str, str]] = {
    "cancel.publish": "none needed: the request is in PostgreSQL; heartbeats deliver it",
    "queue.push": "none needed: the run is pending in PostgreSQL; workers poll it",
    "queue.pop": "workers poll PostgreSQL every poll_s until Redis answers again",
    "queue.depth": "-1 (unknown)",
    "broker.publish": "retried while pub/sub is up; then the batch is only in the local log"
                      " (this instance's fallback subscribers; those reading Redis miss it)",
    "broker.finish": "the local log has the result; waiters elsewhere poll PostgreSQL",
    "broker.reset": "the old done marker may answer waiters elsewhere until its TTL ends",
    "broker.result": "the local log's result, if this instance ran the run",
    "broker.has": "only the local log is consulted",
    "broker.touch": "quiet runs' replay buffers may expire before the run ends",
    "broker.subscribe": "subscribe to the local log (runs this instance executes)",
    "broker.wait": "return None after 1 s; the caller re-checks PostgreSQL",
    "fanout.unsubscribe": "none needed: a lost connection unsubscribes for us",
    "thread.publish": "the event reaches only this instance's local listeners",
    "thread.listen": "listen on this instance's in-memory broker (its own publishes)",
    "fanout.read": "reconnect with backoff, resubscribe, resynchronise every sink",
}


def unavailable(op: str, exc: BaseException, *, asyncio_side: bool = False
                ) -> StoreUnavailable | None:
    """The table: the domain error for ``exc``, or None when it is not Redis being away."""
    if isinstance(exc, _UNAVAILABLE):
        reason = str(exc) or type(exc).__name__
    elif isinstance(exc, rex.ResponseError) and _refusal(str(exc)):
        reason = str(exc)
    elif isinstance(exc, asyncio.CancelledError) and not asyncio_side:
        reason = "the connection was dropped (asyncio-side cancellation)"
    else:
        return None
    return StoreUnavailable(f"Redis unavailable ({op}): {reason}")


def _refusal(text: str) -> bool:
    # redis-py names the common codes with classes (above); the rest keep their code in
    # front, and Redis 6 reports a refused call inside a script as "... -OOM ...".
    return any(text.startswith(f"{code} ") or f"-{code} " in text for code in _REFUSALS)


@contextmanager
def mapped(op: str, *, asyncio_side: bool = False) -> Iterator[None]:
    """Raise ``StoreUnavailable`` for what the table maps; the rest passes unchanged.

    ``asyncio_side=True`` inside asyncio code: there a CancelledError is the task's own
    cancellation and must propagate.
    """
    try:
        yield
    except _CAUGHT as exc:
        error = unavailable(op, exc, asyncio_side=asyncio_side)
        if error is None:
            raise
        raise error from exc


def fell_back(op: str, exc: StoreUnavailable, *, event: str = "redis.fallback",
              **context: Any) -> None:  # noqa: ANN401  log fields, forwarded to logging as keywords
    """Log that ``op`` applied its documented fallback (KeyError if it has none)."""
    log.warning(event, op=op, error=exc.message, fallback=FALLBACKS[op], **context)


async def best_effort(op: str, fn: Callable[[], Awaitable[T]], default: T,
                      **context: Any) -> T:  # noqa: ANN401  log fields, forwarded as keywords
    """Trio side: await ``fn()`` (asyncio calls wrapped with ``aio``); when Redis is
    unavailable, log the fallback and return ``default``."""
    if op not in FALLBACKS:  # fail even while Redis is up: every fallback is documented
        raise KeyError(f"no documented fallback for Redis operation {op!r}")
    try:
        with mapped(op):
            return await fn()
    except StoreUnavailable as exc:
        fell_back(op, exc, **context)
        return default


class RedisClient:
    """One connection pool for the process. A blocking pool: past ``max_connections`` a
    command waits up to ``pool_timeout_s`` for a free connection (then Redis counts as
    unavailable for it), where redis-py's default pool raises at once; with adaptive
    capacity hundreds of runs publish and replay at the same time."""

    def __init__(self, url: str, *, max_connections: int = 100,
                 pool_timeout_s: float = 10.0) -> None:
        self.url = url
        self.max_connections = max_connections
        self.pool_timeout_s = pool_timeout_s
        self.client: aioredis.Redis | None = None

    async def open(self) -> None:
        @aio
        async def _open() -> aioredis.Redis:
            pool = aioredis.BlockingConnectionPool.from_url(
                self.url, max_connections=self.max_connections,
                timeout=self.pool_timeout_s, socket_connect_timeout=5,
                health_check_interval=15)
            return aioredis.Redis.from_pool(pool)  # closing the client closes the pool
        self.client = await _open()

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            @aio
            async def _close() -> None:
                await client.aclose()
            await _close()

    async def ping(self, timeout_s: float = 2.0) -> None:
        client = self.client
        if client is None:
            raise StoreUnavailable("Redis client is not open (ping)")

        @aio
        async def _ping() -> None:
            async with asyncio.timeout(timeout_s):
                await client.ping()
        with mapped("ping"):
            await _ping()
