"""Store endpoints: ``/store/items`` (PUT, GET, DELETE), ``/store/items/search``,
``/store/namespaces`` (spec §6).

Requests are decoded and checked here (namespace labels, key, filter operators, every
number bounded, a 422 naming the field) so the service only sees valid operations; it
authorizes them and checks what an auth handler rewrote. Items come back under exactly
the namespace they were stored in. ``ttl`` is honoured only when ``store.ttl`` is
configured in aegra.json.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from quart import Blueprint, Response, request

from aegra.api import wire
from aegra.api.auth import caller
from aegra.api.deps import services
from aegra.api.openapi import documented
from aegra.domain import store as rules
from aegra.domain.errors import Invalid, NotFound, StoreUnavailable
from aegra.domain.store import Item, SearchItem
from aegra.services.store import StoreService

bp = Blueprint("store", __name__)

Limit = Annotated[int, msgspec.Meta(ge=1, le=rules.MAX_SEARCH_LIMIT)]
Offset = Annotated[int, msgspec.Meta(ge=0, le=rules.MAX_OFFSET)]


class PutItem(msgspec.Struct, kw_only=True):
    namespace: list[str]
    key: str
    value: dict[str, Any]
    index: bool | list[str] | None = None
    ttl: Annotated[float, msgspec.Meta(gt=0, le=rules.MAX_TTL_MINUTES)] | None = None


class DeleteItem(msgspec.Struct, kw_only=True):
    namespace: list[str] | None = None
    key: str | None = None


class SearchItems(msgspec.Struct, kw_only=True):
    namespace_prefix: list[str] | None = None
    filter: dict[str, Any] | None = None
    limit: Limit = 10
    offset: Offset = 0
    query: str | None = None
    refresh_ttl: bool | None = None


class ListNamespaces(msgspec.Struct, kw_only=True):
    prefix: list[str] | None = None
    suffix: list[str] | None = None
    max_depth: Annotated[int, msgspec.Meta(ge=1, le=rules.MAX_DEPTH)] | None = None
    limit: Limit = 100
    offset: Offset = 0


class SearchItemsResponse(msgspec.Struct, kw_only=True):
    items: list[SearchItem]


class NamespacesResponse(msgspec.Struct, kw_only=True):
    namespaces: list[list[str]]


def _store() -> StoreService:
    found = services().store
    if found is None:
        raise StoreUnavailable("the store is not configured on this instance")
    return found


def _bool_arg(name: str) -> bool | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    lowered = raw.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise Invalid(f"'{name}' must be true or false, got {raw!r}", field=name)


def _query_namespace() -> tuple[str, ...]:
    # The SDK sends one dot-joined value; Aegra clients may repeat the parameter instead.
    values = [v.replace("\x00", "") for v in request.args.getlist("namespace")]
    if len(values) > 1:
        return rules.namespace(values, "namespace")
    return rules.dotted_namespace(values[0] if values else "")


def _query_key() -> str:
    return rules.key((request.args.get("key") or "").replace("\x00", ""))


@bp.put("/store/items")
@documented(body=PutItem, tag="Store", status=204)
async def put_item() -> Response:
    """Store or update an item."""
    body = await wire.body(PutItem)
    await _store().put(caller(), namespace=rules.namespace(body.namespace, "namespace"),
                       key=rules.key(body.key), value=body.value,
                       index=rules.index(body.index), ttl=body.ttl)
    return Response(b"", status=204)


@bp.get("/store/items")
@documented(response=Item, tag="Store")
async def get_item() -> Response:
    """Retrieve a single item."""
    namespace = _query_namespace()
    key = _query_key()
    item = await _store().get(caller(), namespace=namespace, key=key,
                              refresh_ttl=_bool_arg("refresh_ttl"))
    if item is None:
        raise NotFound(f"item {key!r} not found in namespace {list(namespace)}", field="key")
    return wire.json(item)


@bp.delete("/store/items")
@documented(body=DeleteItem, tag="Store", status=204)
async def delete_item() -> Response:
    """Delete an item (JSON body, or ``namespace``/``key`` query parameters)."""
    body = await wire.body(DeleteItem)
    if body.key is None and body.namespace is None:
        namespace, key = _query_namespace(), _query_key()
    else:
        namespace = rules.namespace(body.namespace or [], "namespace", allow_empty=True)
        key = rules.key(body.key)
    await _store().delete(caller(), namespace=namespace, key=key)
    return Response(b"", status=204)


@bp.post("/store/items/search")
@documented(body=SearchItems, response=SearchItemsResponse, tag="Store")
async def search_items() -> Response:
    """Search or list items within a namespace prefix (``query``: semantic search)."""
    body = await wire.body(SearchItems)
    items = await _store().search(
        caller(), prefix=rules.namespace(body.namespace_prefix or [], "namespace_prefix",
                                         allow_empty=True),
        filter=rules.search_filter(body.filter), limit=body.limit, offset=body.offset,
        query=body.query or None, refresh_ttl=body.refresh_ttl)
    return wire.json({"items": items})


@bp.post("/store/namespaces")
@documented(body=ListNamespaces, response=NamespacesResponse, tag="Store")
async def list_namespaces() -> Response:
    """List namespaces, optionally by prefix/suffix, truncated to ``max_depth``."""
    body = await wire.body(ListNamespaces)
    found = await _store().list_namespaces(
        caller(), prefix=rules.optional_namespace(body.prefix, "prefix"),
        suffix=rules.optional_namespace(body.suffix, "suffix"), max_depth=body.max_depth,
        limit=body.limit, offset=body.offset)
    return wire.json({"namespaces": found})
