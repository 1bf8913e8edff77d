"""HTTP actor: hypercorn's Trio worker serving the quart-trio app.

Owns the listening sockets. Calls ``started(binds)`` once they are bound (hypercorn passes
the bound addresses, so port 0 works). Graceful stop: ``stop`` is hypercorn's shutdown
trigger; open connections get ``grace_s``. Not restartable: its failure ends the process.
"""

from __future__ import annotations

import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio import serve
from hypercorn.typing import Framework

from aegra.logs import get_logger

log = get_logger("aegra.http")


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
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.graceful_timeout = grace_s
    config.accesslog = None
    config.errorlog = None
    config.keep_alive_timeout = 75  # above common load-balancer idle timeouts
    config.h11_max_incomplete_size = 64 * 1024
    # hypercorn's default listen backlog (100) drops the SYNs of a burst of new
    # connections; clients retry after 1 s, then 3 s (bench/README.md: 1,000 streams at
    # once). The kernel caps it at net.core.somaxconn.
    config.backlog = 2048

    class _Status:
        def started(self, binds: list[str] | None = None) -> None:
            log.info("http.listening", binds=binds)
            task_status.started(binds or [])

    await serve(app, config, shutdown_trigger=stop.wait, task_status=_Status())
