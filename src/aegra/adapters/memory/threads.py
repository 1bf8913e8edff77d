"""In-memory twin of ``PgThreads`` (the ``ThreadStore`` port), for service tests.

Same contract, kept honest by tests/contract/test_thread_store.py: JSONB containment for
search, the authorization filter (``domain.auth.matches``) hiding rows exactly like a
missing one, status recomputed on a state write. Runs live elsewhere: ``active`` is the
set of thread ids with a pending or running run, which a test fills. Checkpoints are not
here either (they belong to ``ThreadStates``).
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from aegra.adapters.memory.assistants import contains
from aegra.domain.auth import Filter, matches
from aegra.domain.errors import Conflict, NotFound

Json = dict[str, Any]
FIELDS = ("thread_id", "created_at", "updated_at", "state_updated_at", "metadata", "status",
          "config", "values", "interrupts", "error")
SORTABLE = ("thread_id", "status", "created_at", "updated_at", "state_updated_at")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _out(row: Json, fields: tuple[str, ...] | list[str] = FIELDS, *,
         include_ttl: bool = False) -> Json:
    out = {k: row[k].isoformat() if isinstance(row[k], dt.datetime) else
           copy.deepcopy(row[k]) for k in fields}
    if include_ttl and row.get("ttl"):
        out["ttl"] = copy.deepcopy(row["ttl"])
    return out


def _not_found(thread_id: str) -> NotFound:
    return NotFound(f"Thread with ID {thread_id} not found")


class MemoryThreads:
    def __init__(self) -> None:
        self.rows: dict[str, Json] = {}
        self.active: set[str] = set()

    def _visible(self, thread_id: str, where: Filter | None) -> Json | None:
        row = self.rows.get(thread_id)
        return row if row is not None and matches(where, row["metadata"]) else None

    def _find(self, thread_id: str, where: Filter | None) -> Json:
        row = self._visible(thread_id, where)
        if row is None:
            raise _not_found(thread_id)
        return row

    async def create(self, thread_id: str, metadata: Json, ttl: Json | None, if_exists: str,
                     *, where: Filter | None = None) -> tuple[Json, bool]:
        if thread_id not in self.rows:
            now = _now()
            self.rows[thread_id] = {
                "thread_id": thread_id, "created_at": now, "updated_at": now,
                "state_updated_at": now, "metadata": copy.deepcopy(metadata),
                "status": "idle", "config": {}, "values": None, "interrupts": {},
                "error": None, "ttl": copy.deepcopy(ttl), "user_id": None}
            return _out(self.rows[thread_id]), True
        row = self._visible(thread_id, where) if if_exists == "do_nothing" else None
        if row is None:
            raise Conflict(f"Thread with ID {thread_id} already exists")
        return _out(row), False

    async def row(self, thread_id: str, *, where: Filter | None = None) -> Json:
        found = self._find(thread_id, where)
        return {**copy.deepcopy(found), "active_run": thread_id in self.active}

    async def get(self, thread_id: str, *, include_ttl: bool = False,
                  where: Filter | None = None) -> Json:
        return _out(self._find(thread_id, where), include_ttl=include_ttl)

    async def patch(self, thread_id: str, metadata: Json | None, ttl: Json | None, *,
                    where: Filter | None = None) -> Json:
        row = self._find(thread_id, where)
        row["metadata"] = {**row["metadata"], **copy.deepcopy(metadata or {})}
        if ttl is not None:
            row["ttl"] = copy.deepcopy(ttl)
        row["updated_at"] = _now()
        return _out(row)

    async def delete(self, thread_ids: list[str], *, where: Filter | None = None
                     ) -> list[str]:
        gone = await self.existing(thread_ids, where=where)
        for thread_id in gone:
            del self.rows[thread_id]
            self.active.discard(thread_id)  # its runs cascade
        return gone

    async def existing(self, thread_ids: list[str], *, where: Filter | None = None
                       ) -> list[str]:
        return [t for t in dict.fromkeys(thread_ids) if self._visible(t, where) is not None]

    async def copy(self, source_id: str, new_id: str, *, where: Filter | None = None,
                   metadata: Json | None = None) -> Json:
        source = self._find(source_id, where)
        if new_id in self.rows:  # PostgreSQL: a primary-key violation
            raise Conflict(f"Thread with ID {new_id} already exists")
        now = _now()
        row = {**copy.deepcopy(source), "thread_id": new_id, "created_at": now,
               "updated_at": now, "state_updated_at": now, "status": "idle", "error": None,
               "ttl": None}
        if metadata is not None:
            row["metadata"] = copy.deepcopy(metadata)
        self.rows[new_id] = row
        return _out(row)

    async def set_state(self, thread_id: str, values: object, interrupts: Json, has_next: bool,
                        *, where: Filter | None = None) -> None:
        row = self._visible(thread_id, where)
        if row is None:
            return
        now = _now()
        row.update({"values": copy.deepcopy(values), "interrupts": copy.deepcopy(interrupts),
                    "status": ("busy" if thread_id in self.active else
                               "interrupted" if has_next else "idle"),
                    "error": None, "updated_at": now, "state_updated_at": now})

    def _matching(self, metadata: Json | None, values: Json | None, status: str | None,
                  ids: list[str] | None, where: Filter | None) -> list[Json]:
        return [r for r in self.rows.values()
                if matches(where, r["metadata"])
                and (not metadata or contains(r["metadata"], metadata))
                and (not values or contains(r["values"], values))
                and (not status or r["status"] == status)
                and (ids is None or r["thread_id"] in ids)]

    async def search(self, *, metadata: Json | None, values: Json | None, status: str | None,
                     ids: list[str] | None, limit: int, offset: int, sort_by: str | None,
                     sort_order: str | None, columns: list[str] | None,
                     where: Filter | None = None) -> tuple[list[Json], bool]:
        key = sort_by if sort_by in SORTABLE else "created_at"
        descending = (sort_order or "").lower() != "asc"
        rows = self._matching(metadata, values, status, ids, where)
        # NULLS LAST in either direction; the id breaks ties in the same direction.
        rows.sort(key=lambda r: r["thread_id"], reverse=descending)
        present = sorted((r for r in rows if r[key] is not None), key=lambda r: r[key],
                         reverse=descending)
        ordered = present + [r for r in rows if r[key] is None]
        wanted = [c for c in (columns or FIELDS) if c in FIELDS] or ["thread_id"]
        page = ordered[offset:offset + limit + 1]
        return [_out(r, wanted) for r in page[:limit]], len(page) > limit

    async def count(self, *, metadata: Json | None, values: Json | None, status: str | None,
                    where: Filter | None = None) -> int:
        return len(self._matching(metadata, values, status, None, where))
