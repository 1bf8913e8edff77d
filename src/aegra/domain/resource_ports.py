"""The ports of the resources the API serves: assistants, threads, the store, crons.

Each is served by a PostgreSQL (or LangGraph) adapter and an in-memory twin, held to the
same contract suite in ``tests/contract``. The run machinery's ports (queue, broker,
cancel bus, leases, claims, the graph runner, the run store) and the auth ports are in
``aegra.domain.ports``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from aegra.domain.assistants import Changes, NewAssistant, Page, Query, Row, ThreadCascade
from aegra.domain.auth import Filter
from aegra.domain.crons import Fired, Firing, NewCron
from aegra.domain.run_rows import Created, NewRun
from aegra.domain.store import Item, Namespace, SearchItem


# -- assistants ---------------------------------------------------------------------------
class AssistantStore(Protocol):
    """Assistants and their immutable versions, scoped to the graphs this server serves.

    ``where`` is the caller's authorization filter on the assistant's metadata, applied
    inside the query: a row it excludes is NotFound, exactly like a missing one.
    """

    async def get(self, assistant_id: str, *, where: Filter | None = None) -> Row: ...

    async def create(self, new: NewAssistant, *, where: Filter | None = None
                     ) -> tuple[Row | None, bool]:
        """``(row, True)`` created (with version 1); ``(row, False)`` the id exists and
        passes ``where``; ``(None, False)`` it exists but ``where`` hides it."""
        ...

    async def patch(self, assistant_id: str, changes: Changes, *,
                    where: Filter | None = None) -> Row:
        """Add version max+1 from the current one plus ``changes``; make it current."""
        ...

    async def set_latest(self, assistant_id: str, version: int, *,
                         where: Filter | None = None) -> Row: ...

    async def in_flight_runs(self, assistant_id: str, *, where: Filter | None = None
                             ) -> list[str]:
        """Ids of its pending/running runs; NotFound when the assistant is not visible."""
        ...

    async def delete(self, assistant_id: str, *, where: Filter | None = None,
                     threads: list[ThreadCascade] | None = None) -> list[str]:
        """Delete it (versions, crons, runs cascade) and the threads ``threads`` names;
        returns the deleted thread ids (their checkpoints are the caller's to drop)."""
        ...

    async def thread_ids(self, assistant_id: str) -> list[str]:
        """Threads whose metadata names the assistant (candidates for a cascade)."""
        ...

    async def search(self, query: Query, page: Page, *, where: Filter | None = None
                     ) -> tuple[list[Row], int | None]:
        """One page and the next offset (None on the last page)."""
        ...

    async def count(self, query: Query, *, where: Filter | None = None) -> int: ...

    async def versions(self, assistant_id: str, *, metadata: dict[str, Any] | None,
                       limit: int, offset: int, where: Filter | None = None) -> list[Row]:
        """Newest first; NotFound only when the assistant itself is not visible."""
        ...


class GraphCatalog(Protocol):
    """The graphs of ``aegra.json``, as far as assistants need them."""

    def ids(self) -> list[str]: ...
    def __contains__(self, graph_id: object) -> bool: ...
    async def drawing(self, graph_id: str, config: dict[str, Any] | None,
                      xray: bool | int) -> dict[str, Any]: ...
    async def schemas(self, graph_id: str, config: dict[str, Any] | None = None
                      ) -> dict[str, Any]: ...
    async def subgraphs(self, graph_id: str, config: dict[str, Any] | None,
                        namespace: str | None, recurse: bool) -> dict[str, Any]: ...
    async def delete_checkpoints(self, thread_ids: list[str]) -> None: ...


class RunCanceller(Protocol):
    """Stops runs already chosen by the caller (no authorization of its own)."""

    async def cancel(self, run_ids: list[str], action: str) -> None: ...


# -- threads ------------------------------------------------------------------------------
class ThreadStore(Protocol):
    """Thread rows: metadata, TTL and the cached latest state (SDK ``Thread`` dicts).

    ``where`` is the caller's authorization filter on the thread's metadata, applied
    inside the query: a row it excludes is NotFound (or skipped, for the bulk methods),
    exactly like a missing one.
    """

    async def create(self, thread_id: str, metadata: dict[str, Any],
                     ttl: dict[str, Any] | None, if_exists: str, *,
                     where: Filter | None = None) -> tuple[dict[str, Any], bool]:
        """``(thread, created)``. An existing id is a Conflict unless ``if_exists`` is
        ``do_nothing`` and the row passes ``where`` (then it is returned as is)."""
        ...

    async def row(self, thread_id: str, *, where: Filter | None = None) -> dict[str, Any]:
        """The raw row plus ``active_run`` (a pending/running run exists)."""
        ...

    async def get(self, thread_id: str, *, include_ttl: bool = False,
                  where: Filter | None = None) -> dict[str, Any]: ...

    async def patch(self, thread_id: str, metadata: dict[str, Any] | None,
                    ttl: dict[str, Any] | None, *, where: Filter | None = None
                    ) -> dict[str, Any]:
        """Merge ``metadata`` into the top-level keys; replace the TTL when given."""
        ...

    async def delete(self, thread_ids: list[str], *, where: Filter | None = None
                     ) -> list[str]:
        """Delete threads with their checkpoints (runs and crons cascade); the ids gone."""
        ...

    async def existing(self, thread_ids: list[str], *, where: Filter | None = None
                       ) -> list[str]: ...

    async def copy(self, source_id: str, new_id: str, *, where: Filter | None = None,
                   metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        """A new row from the source's (``metadata`` replaces the source's when given)."""
        ...

    async def set_state(self, thread_id: str, values: object, interrupts: dict[str, Any],
                        has_next: bool, *, where: Filter | None = None) -> None:
        """Refresh the cached state after a state write and recompute the status."""
        ...

    async def search(self, *, metadata: dict[str, Any] | None,
                     values: dict[str, Any] | None, status: str | None,
                     ids: list[str] | None, limit: int, offset: int, sort_by: str | None,
                     sort_order: str | None, columns: list[str] | None,
                     where: Filter | None = None) -> tuple[list[dict[str, Any]], bool]:
        """``(page, whether another page follows)``."""
        ...

    async def count(self, *, metadata: dict[str, Any] | None,
                    values: dict[str, Any] | None, status: str | None,
                    where: Filter | None = None) -> int: ...


class ThreadStates(Protocol):
    """A thread's checkpoints and the states a graph reads from them (LangGraph's side).

    ``open_config`` is what the graph (factory) is opened with; ``config`` is the call's
    ``{"configurable": ...}``. States are SDK ``ThreadState`` dicts; ``summary`` is what
    the thread row caches, ``{values, interrupts, has_next}``, plus ``state``: the
    latest root state (a ``state_update`` event's). A graph's refusal of an update is
    BadRequest.
    """

    async def get_state(self, graph_id: str, config: dict[str, Any], *,
                        open_config: dict[str, Any], subgraphs: bool
                        ) -> dict[str, Any] | None:
        """The state, or None when the thread has no checkpoint at all."""
        ...

    async def update_state(self, graph_id: str, config: dict[str, Any], *,
                           open_config: dict[str, Any], values: object, as_node: str | None
                           ) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(new checkpoint's configurable, summary)``."""
        ...

    async def bulk_update(self, graph_id: str, config: dict[str, Any], *,
                          open_config: dict[str, Any], supersteps: list[list[dict[str, Any]]]
                          ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Supersteps of ``{values, command, as_node}``: ``(checkpoint, summary)``."""
        ...

    async def history(self, graph_id: str, config: dict[str, Any], *,
                      open_config: dict[str, Any], limit: int, before: str | None,
                      metadata: dict[str, Any] | None) -> list[dict[str, Any]]: ...

    async def copy_checkpoints(self, source_id: str, target_id: str) -> None: ...
    async def delete_checkpoints(self, thread_ids: list[str]) -> None: ...
    async def prune_keep_latest(self, thread_ids: list[str]) -> None: ...


class ActiveRuns(Protocol):
    """Which runs of a thread are still pending or running (no authorization)."""

    async def inflight(self, *, thread_id: str | None = None) -> list[str]: ...


# --- store: long-term memory items ------------------------------------------------------


class StoreItems(Protocol):
    """Items by (namespace, key). ``filter`` is the store's item filter
    (``domain.store``), already AND-ed with any authorization filter; no authorization
    happens here. ``ttl`` is in minutes."""

    semantic: bool  # whether ``query`` in search ranks by embeddings

    async def put(self, namespace: Namespace, key: str, value: dict[str, Any], *,
                  index: bool | list[str] | None, ttl: float | None) -> None: ...

    async def get(self, namespace: Namespace, key: str, *,
                  refresh_ttl: bool | None) -> Item | None: ...

    async def delete(self, namespace: Namespace, key: str) -> None: ...

    async def search(self, prefix: Namespace, *, filter: dict[str, Any] | None, limit: int,
                     offset: int, query: str | None,
                     refresh_ttl: bool | None) -> list[SearchItem]: ...

    async def list_namespaces(self, *, prefix: Namespace | None, suffix: Namespace | None,
                              max_depth: int | None, limit: int,
                              offset: int) -> list[list[str]]: ...


# -- crons --------------------------------------------------------------------------------
class CronStore(Protocol):
    """Crons and the runs they make (rows as dicts in ``domain.crons.COLUMNS``, raw
    timestamps). ``where`` is the caller's authorization filter on the cron's metadata,
    applied inside the query: a cron it excludes is NotFound (or not counted), exactly
    like a missing one."""

    async def assistant(self, value: str) -> dict[str, Any]:
        """The assistant a cron names (its id or its graph's id): assistant_id, graph_id,
        config, context, metadata; NotFound otherwise."""
        ...

    async def create(self, new: NewCron, first_run: NewRun | None, *, max_per_user: int,
                     assistant_where: Filter | None = None,
                     thread_where: Filter | None = None
                     ) -> tuple[dict[str, Any], Created | None]:
        """The cron and its first run, in one transaction: TooMany past ``max_per_user``
        (0: no cap) crons of ``new.user_id``; NotFound when ``assistant_where`` hides the
        assistant or ``thread_where`` the thread (or it does not exist)."""
        ...

    async def get(self, cron_id: str, *, where: Filter | None = None) -> dict[str, Any]: ...

    async def update(self, cron_id: str, patch: Callable[[dict[str, Any]], dict[str, Any]],
                     *, where: Filter | None = None) -> dict[str, Any]:
        """``patch`` (pure) maps the locked row to the columns to change."""
        ...

    async def delete(self, cron_id: str, *, where: Filter | None = None) -> None: ...

    async def search(self, *, assistant_id: str | None, thread_id: str | None,
                     enabled: bool | None, metadata: dict[str, Any] | None, limit: int,
                     offset: int, sort_by: str, sort_order: str,
                     where: Filter | None = None, thread_where: Filter | None = None
                     ) -> list[dict[str, Any]]:
        """``thread_where`` filters thread-bound crons by their thread's metadata."""
        ...

    async def count(self, *, assistant_id: str | None, thread_id: str | None,
                    enabled: bool | None, metadata: dict[str, Any] | None,
                    where: Filter | None = None, thread_where: Filter | None = None
                    ) -> int: ...

    async def fire_due(self, plan: Callable[[dict[str, Any]], Firing], limit: int) -> Fired:
        """Claim up to ``limit`` due crons, make the runs ``plan`` decides and advance
        them, in one transaction (no authorization: the ticker fires as each owner)."""
        ...


