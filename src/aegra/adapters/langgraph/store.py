"""The ``StoreItems`` port on LangGraph's ``AsyncPostgresStore`` (the one graphs use too).

Each method is one bridge crossing: the asyncio-side coroutine calls the store and turns
LangGraph's ``Item``/``SearchItem`` objects into domain Structs before returning to Trio. Errors are
mapped here (STYLE §3): LangGraph's namespace and value errors -> ``Invalid``;
connection and pool failures -> ``StoreUnavailable``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

import psycopg
from langgraph.store.base import InvalidNamespaceError
from langgraph.store.base import Item as LgItem
from langgraph.store.base import SearchItem as LgSearchItem
from langgraph.store.postgres.aio import AsyncPostgresStore
from psycopg_pool import PoolTimeout

from aegra.adapters.aio import aio
from aegra.adapters.langgraph.persistence import LangGraphPersistence
from aegra.domain.errors import Invalid, StoreUnavailable
from aegra.domain.store import Item, Namespace, SearchItem

T = TypeVar("T")


class PgItemStore:
    def __init__(self, persistence: LangGraphPersistence, *, semantic: bool,
                 ttl_enabled: bool) -> None:
        self._persistence = persistence
        self.semantic = semantic
        # Without a TTL config, per-item ttl is dropped: nothing would sweep or refresh
        # it consistently, so honouring it would leave expired items visible forever.
        self._ttl_enabled = ttl_enabled

    async def _run(self, fn: Callable[[AsyncPostgresStore], Awaitable[T]]) -> T:
        store = self._persistence.store
        if store is None:
            raise StoreUnavailable("the store is not open")

        @aio
        async def _call() -> T:
            return await fn(store)

        try:
            return await _call()
        except (InvalidNamespaceError, ValueError) as exc:
            raise Invalid(str(exc), field="namespace" if isinstance(
                exc, InvalidNamespaceError) else None) from None
        except psycopg.DataError as exc:
            raise Invalid(f"the store rejected the value: {str(exc).strip()}") from None
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise StoreUnavailable(f"store unavailable: {str(exc).strip()}") from exc

    async def put(self, namespace: Namespace, key: str, value: dict[str, Any], *,
                  index: bool | list[str] | None, ttl: float | None) -> None:
        kwargs: dict[str, Any] = {}
        if self._ttl_enabled and ttl is not None:
            kwargs["ttl"] = ttl
        idx: Literal[False] | list[str] | None = (
            False if index is False else (index if isinstance(index, list) else None))

        async def op(store: AsyncPostgresStore) -> None:
            await store.aput(namespace, key, value, index=idx, **kwargs)
        await self._run(op)

    async def get(self, namespace: Namespace, key: str, *,
                  refresh_ttl: bool | None) -> Item | None:
        async def op(store: AsyncPostgresStore) -> Item | None:
            item = await store.aget(namespace, key, refresh_ttl=refresh_ttl)
            return None if item is None else _item(item)
        return await self._run(op)

    async def delete(self, namespace: Namespace, key: str) -> None:
        async def op(store: AsyncPostgresStore) -> None:
            await store.adelete(namespace, key)
        await self._run(op)

    async def search(self, prefix: Namespace, *, filter: dict[str, Any] | None, limit: int,
                     offset: int, query: str | None,
                     refresh_ttl: bool | None) -> list[SearchItem]:
        async def op(store: AsyncPostgresStore) -> list[SearchItem]:
            items = await store.asearch(prefix, filter=filter, limit=limit, offset=offset,
                                        query=query, refresh_ttl=refresh_ttl)
            return [_search_item(item) for item in items]
        return await self._run(op)

    async def list_namespaces(self, *, prefix: Namespace | None, suffix: Namespace | None,
                              max_depth: int | None, limit: int,
                              offset: int) -> list[list[str]]:
        async def op(store: AsyncPostgresStore) -> list[list[str]]:
            found = await store.alist_namespaces(prefix=prefix, suffix=suffix,
                                                 max_depth=max_depth, limit=limit,
                                                 offset=offset)
            return [list(ns) for ns in found]
        return await self._run(op)


def _item(item: LgItem) -> Item:
    return Item(namespace=list(item.namespace), key=item.key, value=item.value,
                created_at=item.created_at.isoformat(), updated_at=item.updated_at.isoformat())


def _search_item(item: LgSearchItem) -> SearchItem:
    return SearchItem(namespace=list(item.namespace), key=item.key, value=item.value,
                      created_at=item.created_at.isoformat(),
                      updated_at=item.updated_at.isoformat(), score=item.score)
