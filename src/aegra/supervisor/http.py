"""HTTP actor: hypercorn's Trio worker serving the quart-trio app.

Owns the listening sockets. Calls ``started(binds)`` once they are bound (hypercorn passes
the bound addresses, so port 0 works). Graceful stop: ``stop`` is hypercorn's shutdown
trigger; open connections get ``grace_s``. Not restartable: its failure ends the process;
an address that cannot be bound raises ``BindFailed`` (one line naming host and port).
"""

from __future__ import annotations

import errno
import http
import os

import h11
import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.trio import serve
from hypercorn.typing import Framework, H11SendableEvent

from aegra.logs import get_logger

log = get_logger("aegra.http")
# Set by ``aegra serve --processes`` (supervisor/processes.py) in its children: serve on
# the parent's listening socket rather than binding host:port.
LISTEN_FD_ENV = "AEGRA_LISTEN_FD"


class BindFailed(Exception):
    """The listening socket could not be bound; the message is the operator's one line."""

    def __init__(self, host: str, port: int, error: OSError) -> None:
        if error.errno == errno.EADDRINUSE:
            super().__init__(f"port {port} on {host} is in use: {error}")
        else:
            super().__init__(f"cannot listen on {host}:{port}: {error}")


def _phrase(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""  # a non-standard code: h11 allows an empty reason


def _send_with_reason_phrases() -> None:
    """hypercorn hands h11 its responses without a reason phrase, so the status line reads
    ``HTTP/1.1 404 `` and clients that quote it (httpx's ``HTTPStatusError``, hence the
    SDKs' errors) show ``'404 '``. Neither quart nor hypercorn can set one, so the
    standard phrase is filled in where hypercorn sends the event to h11. (HTTP/2 has no
    reason phrase.)"""
    original = H11Protocol._send_h11_event
    if getattr(original, "adds_reason_phrase", False):
        return

    async def send(self: H11Protocol, event: H11SendableEvent) -> None:
        if isinstance(event, h11.Response | h11.InformationalResponse) and not event.reason:
            event = type(event)(status_code=event.status_code, headers=event.headers,
                                http_version=event.http_version,
                                reason=_phrase(event.status_code))
        await original(self, event)

    send.adds_reason_phrase = True  # type: ignore[attr-defined]
    H11Protocol._send_h11_event = send  # type: ignore[method-assign]


_send_with_reason_phrases()


async def run_http(
    app: Framework,
    host: str,
    port: int,
    stop: trio.Event,
    *,
    grace_s: float = 5.0,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    config = HyperConfig()
    fd = os.environ.get(LISTEN_FD_ENV)
    config.bind = ([f"fd://{int(fd)}"] if fd else
                   [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"])
    config.graceful_timeout = grace_s
    config.accesslog = None
    config.errorlog = None
    config.keep_alive_timeout = 75  # above common load-balancer idle timeouts
    config.h11_max_incomplete_size = 64 * 1024
    # hypercorn's default listen backlog (100) drops the SYNs of a burst of new
    # connections; clients retry after 1 s, then 3 s (bench/README.md: 1,000 streams at
    # once). The kernel caps it at net.core.somaxconn.
    config.backlog = 2048

    bound = False

    class _Status:
        def started(self, binds: list[str] | None = None) -> None:
            nonlocal bound
            bound = True
            log.info("http.listening", binds=binds)
            task_status.started(binds or [])

    try:
        await serve(app, config, shutdown_trigger=stop.wait, task_status=_Status())
    except (OSError, BaseExceptionGroup) as exc:
        error = None if bound else _bind_error(exc)
        if error is None:
            raise
        raise BindFailed(host, port, error) from exc


def _bind_error(exc: BaseException) -> OSError | None:
    """The OSError hypercorn raised creating its listening sockets (through trio's
    exception groups), not one from, say, app startup."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if not isinstance(exc, OSError):
        return None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "_create_sockets":
            return exc
        tb = tb.tb_next
    return None
