"""The long-term memory store: put, get, delete, search, list namespaces.

Every method takes the caller first and asks the ``store`` handlers (spec/auth.md items
9-11) with the value the platform passes (langgraph-api ``api/store.py``). The value is
mutable: the handler may rewrite the namespace (typically prepending the user's id) or
any other field, so the store sees the edited value, checked again by the same rules as
the request. As on the platform, a filter returned for search is AND-ed with the
caller's item filter; one returned for put/get/delete/list_namespaces is not applied
(there the namespace is the scope).
"""

from __future__ import annotations

from typing import Any

from aegra.domain import store as rules
from aegra.domain.auth import Caller
from aegra.domain.ports import Authorizer
from aegra.domain.resource_ports import StoreItems
from aegra.domain.store import Item, Namespace, SearchItem

RESOURCE = "store"


class StoreService:
    def __init__(self, items: StoreItems, auth: Authorizer) -> None:
        self.items = items
        self.auth = auth

    async def put(self, caller: Caller, *, namespace: Namespace, key: str,
                  value: dict[str, Any], index: bool | list[str] | None = None,
                  ttl: float | None = None) -> None:
        op: dict[str, Any] = {"namespace": namespace, "key": key, "value": value,
                              "index": index, "ttl": ttl}
        await self.auth.authorize(caller, RESOURCE, "put", op)
        await self.items.put(rules.namespace(op["namespace"], "namespace"),
                             rules.key(op["key"]), rules.value(op["value"]),
                             index=rules.index(op["index"]), ttl=rules.ttl(op["ttl"]))

    async def get(self, caller: Caller, *, namespace: Namespace, key: str,
                  refresh_ttl: bool | None = None) -> Item | None:
        op: dict[str, Any] = {"namespace": namespace, "key": key, "refresh_ttl": refresh_ttl}
        await self.auth.authorize(caller, RESOURCE, "get", op)
        return await self.items.get(
            rules.namespace(op["namespace"], "namespace", allow_empty=True),
            rules.key(op["key"]), refresh_ttl=op["refresh_ttl"])

    async def delete(self, caller: Caller, *, namespace: Namespace, key: str) -> None:
        op: dict[str, Any] = {"namespace": namespace, "key": key}
        await self.auth.authorize(caller, RESOURCE, "delete", op)
        await self.items.delete(
            rules.namespace(op["namespace"], "namespace", allow_empty=True),
            rules.key(op["key"]))

    async def search(self, caller: Caller, *, prefix: Namespace,
                     filter: dict[str, Any] | None = None, limit: int = 10, offset: int = 0,
                     query: str | None = None,
                     refresh_ttl: bool | None = None) -> list[SearchItem]:
        op: dict[str, Any] = {"namespace": prefix, "filter": filter, "limit": limit,
                              "offset": offset, "query": query, "refresh_ttl": refresh_ttl}
        allowed = await self.auth.authorize(caller, RESOURCE, "search", op)
        prefix = rules.namespace(op["namespace"], "namespace_prefix", allow_empty=True)
        limit, offset = rules.page(op["limit"], op["offset"])
        try:
            item_filter = rules.conjoin(rules.search_filter(op["filter"]), allowed)
        except rules.Unsatisfiable:
            return []
        return await self.items.search(prefix, filter=item_filter, limit=limit,
                                       offset=offset, query=op["query"] or None,
                                       refresh_ttl=op["refresh_ttl"])

    async def list_namespaces(self, caller: Caller, *, prefix: Namespace | None = None,
                              suffix: Namespace | None = None, max_depth: int | None = None,
                              limit: int = 100, offset: int = 0) -> list[list[str]]:
        op: dict[str, Any] = {"namespace": prefix, "suffix": suffix, "max_depth": max_depth,
                              "limit": limit, "offset": offset}
        await self.auth.authorize(caller, RESOURCE, "list_namespaces", op)
        limit, offset = rules.page(op["limit"], op["offset"])
        return await self.items.list_namespaces(
            prefix=rules.optional_namespace(op["namespace"], "prefix"),
            suffix=rules.optional_namespace(op["suffix"], "suffix"),
            max_depth=rules.max_depth(op["max_depth"]), limit=limit, offset=offset)
