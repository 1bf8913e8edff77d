"""Operations: the admin store port, maintenance mode's error, the log levels (spec
operations.md §3-§5)."""

from __future__ import annotations

from typing import Any, Protocol

from aegra.domain.errors import Unavailable

MAINTENANCE_KEY = "maintenance"  # the settings row of the deployment-wide switch
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
RETRY_AFTER_S = 30  # what a refused run creation tells the client to wait


class MaintenanceOn(Unavailable):
    """503 with ``Retry-After``: run intake is paused deployment-wide."""

    headers = {"Retry-After": str(RETRY_AFTER_S)}

    def __init__(self) -> None:
        super().__init__("the deployment is in maintenance mode: run creation is paused; "
                         f"retry after {RETRY_AFTER_S} s")


class AdminStore(Protocol):
    async def runs_by_status(self) -> dict[str, int]:
        """Every run in the database, counted by status."""
        ...

    async def cron_counts(self) -> tuple[int, int]:
        """(enabled crons, enabled crons whose next run time has passed)."""
        ...

    async def setting(self, key: str) -> Any:  # noqa: ANN401  a JSON value
        """A deployment setting, or None when never set."""
        ...

    async def set_setting(self, key: str, value: object) -> None:
        ...
