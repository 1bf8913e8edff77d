"""The Redis half of ``aegra doctor``: one synchronous PING (and the queue's length).

Synchronous on purpose: the doctor is a short command with no event loop. Every failure
(refused, timeout, DNS, auth, a malformed ``REDIS_URL``) becomes ``StoreUnavailable``
carrying the library's first line.
"""

from __future__ import annotations

import time

import msgspec
import redis
from redis import exceptions as rex

from aegra.domain.errors import StoreUnavailable

# queue.py's list, named here: importing queue.py (trio, asyncpg, trio-asyncio) would
# double the doctor's start-up time. tests/unit/test_doctor.py checks they agree.
JOBS = "aegra:jobs"


class RedisFacts(msgspec.Struct, frozen=True):
    ping_s: float
    queued: int  # ids waiting in the job list (each also pending in PostgreSQL)


def probe(url: str, timeout_s: float) -> RedisFacts:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s,
                                      socket_timeout=timeout_s)
    except ValueError as exc:  # not a redis:// URL
        raise StoreUnavailable(_first_line(exc)) from None
    try:
        started = time.monotonic()
        client.ping()
        ping_s = time.monotonic() - started
        return RedisFacts(ping_s, int(client.llen(JOBS)))
    except (rex.RedisError, OSError) as exc:
        raise StoreUnavailable(_first_line(exc)) from None
    finally:
        client.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
