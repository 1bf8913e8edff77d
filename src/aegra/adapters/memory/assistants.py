"""In-memory twin of ``PgAssistants`` (the ``AssistantStore`` port), for service tests.

Same contract, kept honest by tests/contract/test_assistant_store.py: reads scoped to
the served graphs, versions immutable, the authorization filter (``domain.auth.matches``)
hiding rows exactly like a missing one. The tables the PostgreSQL store only touches
through cascades (threads naming an assistant, its runs) are plain dicts a test fills.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Sequence
from typing import Any

from aegra.domain.assistants import (
    COLUMNS,
    PATCHED,
    VERSION_COLUMNS,
    Changes,
    NewAssistant,
    Page,
    Query,
    Row,
    ThreadCascade,
    merged,
    not_found,
)
from aegra.domain.auth import Filter, matches
from aegra.domain.errors import NotFound

IN_FLIGHT = ("pending", "running")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _out(row: dict[str, Any], columns: Sequence[str]) -> Row:
    return {k: row[k].isoformat() if isinstance(row[k], dt.datetime) else
            copy.deepcopy(row[k]) for k in columns}


def contains(have: object, want: object) -> bool:
    """PostgreSQL's ``jsonb @> jsonb``: objects by key, arrays by element, else equal."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(
            k in have and contains(have[k], v) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and all(
            any(contains(h, w) for h in have) for w in want)
    if isinstance(have, bool) or isinstance(want, bool):  # True == 1 in Python, not jsonb
        return isinstance(have, bool) and isinstance(want, bool) and have == want
    return bool(have == want)


class MemoryAssistants:
    def __init__(self, graph_ids: Sequence[str]) -> None:
        self.graph_ids = list(graph_ids)
        self.rows: dict[str, dict[str, Any]] = {}
        self.history: dict[str, list[dict[str, Any]]] = {}
        self.threads: dict[str, dict[str, Any]] = {}  # thread_id -> metadata
        self.runs: dict[str, tuple[str, str]] = {}  # run_id -> (assistant_id, status)

    def _visible(self, assistant_id: str, where: Filter | None, *, scoped: bool = False
                 ) -> dict[str, Any]:
        row = self.rows.get(assistant_id)
        if (row is None or not matches(where, row["metadata"])
                or (scoped and row["graph_id"] not in self.graph_ids)):
            raise not_found(assistant_id)
        return row

    async def get(self, assistant_id: str, *, where: Filter | None = None) -> Row:
        return _out(self._visible(assistant_id, where, scoped=True), COLUMNS)

    async def create(self, new: NewAssistant, *, where: Filter | None = None
                     ) -> tuple[Row | None, bool]:
        existing = self.rows.get(new.assistant_id)
        if existing is not None:
            if not matches(where, existing["metadata"]):
                return None, False
            return _out(existing, COLUMNS), False
        now = _now()
        row = {"assistant_id": new.assistant_id, "graph_id": new.graph_id,
               "config": copy.deepcopy(new.config), "context": copy.deepcopy(new.context),
               "metadata": copy.deepcopy(new.metadata), "name": new.name,
               "created_at": now, "updated_at": now, "version": 1,
               "description": new.description}
        self.rows[new.assistant_id] = row
        self.history[new.assistant_id] = [self._version_of(row, now)]
        return _out(row, COLUMNS), True

    @staticmethod
    def _version_of(row: dict[str, Any], at: dt.datetime) -> dict[str, Any]:
        version = {k: copy.deepcopy(row[k]) for k in VERSION_COLUMNS if k != "created_at"}
        version["created_at"] = at
        return version

    async def patch(self, assistant_id: str, changes: Changes, *,
                    where: Filter | None = None) -> Row:
        row = self._visible(assistant_id, where)
        now = _now()
        row.update(zip(PATCHED, copy.deepcopy(merged(row, changes)), strict=True))
        row["version"] = max(v["version"] for v in self.history[assistant_id]) + 1
        row["updated_at"] = now
        self.history[assistant_id].append(self._version_of(row, now))
        return _out(row, COLUMNS)

    async def set_latest(self, assistant_id: str, version: int, *,
                         where: Filter | None = None) -> Row:
        row = self._visible(assistant_id, where)
        found = next((v for v in self.history[assistant_id] if v["version"] == version), None)
        if found is None:
            raise NotFound(f"Version {version} not found for assistant '{assistant_id}'")
        row.update({k: copy.deepcopy(found[k]) for k in (*PATCHED, "version")})
        row["updated_at"] = _now()
        return _out(row, COLUMNS)

    async def in_flight_runs(self, assistant_id: str, *, where: Filter | None = None
                             ) -> list[str]:
        self._visible(assistant_id, where)
        return [run_id for run_id, (aid, status) in self.runs.items()
                if aid == assistant_id and status in IN_FLIGHT]

    async def thread_ids(self, assistant_id: str) -> list[str]:
        return [t for t, meta in self.threads.items() if meta.get("assistant_id") == assistant_id]

    async def delete(self, assistant_id: str, *, where: Filter | None = None,
                     threads: list[ThreadCascade] | None = None) -> list[str]:
        self._visible(assistant_id, where)
        del self.rows[assistant_id], self.history[assistant_id]
        self.runs = {r: v for r, v in self.runs.items() if v[0] != assistant_id}
        deleted: list[str] = []
        for cascade in threads or ():
            for thread_id in await self.thread_ids(assistant_id):
                if ((cascade.thread_ids is None or thread_id in cascade.thread_ids)
                        and matches(cascade.where, self.threads[thread_id])):
                    del self.threads[thread_id]
                    deleted.append(thread_id)
        return deleted

    def _matching(self, query: Query, where: Filter | None) -> list[dict[str, Any]]:
        name = (query.name or "").lower()
        return [row for row in self.rows.values()
                if row["graph_id"] in self.graph_ids
                and (query.graph_id is None or row["graph_id"] == query.graph_id)
                and name in row["name"].lower()
                and (not query.metadata or contains(row["metadata"], query.metadata))
                and matches(where, row["metadata"])]

    async def search(self, query: Query, page: Page, *, where: Filter | None = None
                     ) -> tuple[list[Row], int | None]:
        rows = self._matching(query, where)
        by = page.sort_by or "created_at"

        def key(row: dict[str, Any]) -> tuple[Any, str]:
            value = row[by]
            return (value.lower() if by in ("name", "graph_id") else value,
                    row["assistant_id"])
        rows.sort(key=key, reverse=page.sort_order != "asc")
        chunk = rows[page.offset:page.offset + page.limit + 1]
        more = len(chunk) > page.limit
        return [_out(r, COLUMNS) for r in chunk[:page.limit]], (
            page.offset + page.limit if more else None)

    async def count(self, query: Query, *, where: Filter | None = None) -> int:
        return len(self._matching(query, where))

    async def versions(self, assistant_id: str, *, metadata: dict[str, Any] | None,
                       limit: int, offset: int, where: Filter | None = None) -> list[Row]:
        self._visible(assistant_id, where)
        found = [v for v in reversed(self.history[assistant_id])
                 if (not metadata or contains(v["metadata"], metadata))
                 and matches(where, v["metadata"])]
        return [_out(v, VERSION_COLUMNS) for v in found[offset:offset + limit]]
