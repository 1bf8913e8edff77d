"""Contract suites: one suite per port, run on the in-memory adapter and the real one
(PostgreSQL/Redis, in-process on the trio-asyncio bridge), so the fakes stay honest."""

from collections.abc import Callable

import pytest


@pytest.fixture
def database_url(make_database: Callable[..., str], migrated_template: str) -> str:
    """A database already at head: the suites' own ``ensure_migrated`` calls find nothing
    to do (migrations are the subject of tests/e2e/test_lifecycle.py and friends)."""
    return make_database(template=migrated_template)
