"""Authorization filters mean the same thing in SQL and in Python.

``adapters/postgres/filters.where`` (what every PostgreSQL query applies) is held to
``domain.auth.matches`` (what the in-memory adapters apply) on a table of metadata and
filters covering every operator, types that JSONB compares differently from Python, and
nesting. A difference is a bug in one of them.
"""

from __future__ import annotations

from typing import Any

import pytest

from aegra.adapters.postgres import filters, migrate
from aegra.domain.auth import FilterError, check_filter, matches
from tests.contract.support import pg_pool

ROWS: list[dict[str, Any]] = [
    {}, {"owner": "alice"}, {"owner": "bob"}, {"owner": "alice", "team": "red"},
    {"owner": None}, {"owner": ["alice"]}, {"owner": 1}, {"owner": 1.0}, {"owner": True},
    {"tags": ["a", "b"]}, {"tags": ["a"]}, {"tags": "a"}, {"tags": []},
    {"team": {"id": 1}}, {"team": {"id": 1, "x": 2}}, {"owner": "alice", "tags": ["b"]},
    {"teams": [{"id": 1, "x": 2}, {"id": 3}]}, {"teams": [{"id": 2}]}, {"tags": [True]},
]
FILTERS: list[dict[str, Any]] = [
    {"owner": "alice"}, {"owner": {"$eq": "alice"}}, {"owner": None}, {"owner": 1},
    {"owner": True}, {"owner": ["alice"]}, {"team": {"$eq": {"id": 1}}},
    {"tags": {"$contains": "a"}}, {"tags": {"$contains": ["a", "b"]}},
    {"tags": {"$contains": []}}, {"owner": "alice", "team": "red"},
    {"teams": {"$contains": {"id": 1}}}, {"owner": 1.0},
    {"$or": [{"owner": "alice"}, {"owner": "bob"}]},
    {"$and": [{"owner": "alice"}, {"tags": {"$contains": "b"}}]},
    {"$or": [{"$and": [{"owner": "alice"}, {"team": "red"}]}, {"tags": {"$contains": "a"}}]},
    {"owner": "alice", "$or": [{"team": "red"}, {"tags": {"$contains": "b"}}]},
]


def test_bad_filters_are_refused() -> None:
    for bad in ({"$or": [{"a": 1}]}, {"$nor": []}, {"a": {"$gt": 1}}, [1],
                {"a": {"$eq": 1, "$contains": 2}},
                {"$or": [{"$or": [{"$or": [{"a": 1}, {"a": 2}]}, {"b": 1}]}, {"c": 1}]}):
        with pytest.raises(FilterError):
            check_filter(bad)
    for good in FILTERS:
        assert check_filter(good) is good


async def test_sql_and_python_agree(database_url: str) -> None:
    migrate.ensure_migrated(database_url)
    async with pg_pool(database_url) as pool:
        for flt in FILTERS:
            args: list[Any] = []
            predicate = filters.where(check_filter(flt), "m.metadata", args)
            n = len(args)
            sql = (f"SELECT i FROM unnest(${n + 1}::jsonb[]) WITH ORDINALITY "
                   f"AS m(metadata, i) WHERE {predicate} ORDER BY i")
            rows = await pool.fetch(sql, *args, ROWS)
            in_sql = [int(r["i"]) - 1 for r in rows]
            in_python = [i for i, row in enumerate(ROWS) if matches(flt, row)]
            assert in_sql == in_python, (flt, in_sql, in_python)
        # Every filter selects something and leaves something out (the table is
        # rich enough to tell a broken operator from a working one).
        picked = [any(matches(f, r) for r in ROWS) for f in FILTERS]
        assert all(picked)
        assert all(not all(matches(f, r) for r in ROWS) for f in FILTERS
                   if f != {"tags": {"$contains": []}})


def test_no_filter_is_no_predicate() -> None:
    args: list[Any] = []
    assert filters.where(None, "t.metadata", args) == "TRUE" and args == []
    assert filters.thread_where(None, "r.thread_id", args) == "TRUE"
    assert all(matches(None, row) for row in ROWS)
