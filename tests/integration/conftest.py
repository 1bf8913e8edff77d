"""Integration ring: real PostgreSQL and Redis, in-process on the trio-asyncio bridge."""

from collections.abc import Callable

import pytest


@pytest.fixture
def database_url(make_database: Callable[..., str], migrated_template: str) -> str:
    """A database already at head: the tests' own ``ensure_migrated`` calls find nothing
    to do (migrations are the subject of tests/e2e/test_lifecycle.py and friends)."""
    return make_database(template=migrated_template)
