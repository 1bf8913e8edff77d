"""Contract suites: one suite per port, run on the in-memory adapter and the real one
(PostgreSQL/Redis, in-process on the trio-asyncio bridge), so the fakes stay honest."""
