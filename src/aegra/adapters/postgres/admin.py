"""``AdminStore`` on PostgreSQL: deployment-wide counts and the settings table (0002)."""

from __future__ import annotations

from typing import Any

from aegra.adapters.postgres.pool import PgPool

_RUNS = "SELECT status, count(*) AS n FROM runs GROUP BY status"
_CRONS = """
SELECT count(*) FILTER (WHERE enabled) AS enabled,
       count(*) FILTER (WHERE enabled AND next_run_date IS NOT NULL
                        AND next_run_date <= now()) AS due
FROM crons
"""
_GET = "SELECT value FROM aegra_settings WHERE key = $1"
_SET = """
INSERT INTO aegra_settings (key, value) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
"""


class PgAdmin:
    def __init__(self, pg: PgPool) -> None:
        self.pg = pg

    async def runs_by_status(self) -> dict[str, int]:
        return {r["status"]: int(r["n"]) for r in await self.pg.fetch(_RUNS)}

    async def cron_counts(self) -> tuple[int, int]:
        row = await self.pg.fetchrow(_CRONS)
        assert row is not None  # an aggregate always answers one row
        return int(row["enabled"]), int(row["due"])

    async def setting(self, key: str) -> Any:  # noqa: ANN401  a JSON value
        return await self.pg.fetchval(_GET, key)  # the pool's codec decodes jsonb

    async def set_setting(self, key: str, value: object) -> None:
        await self.pg.execute(_SET, key, value)
