"""In-memory twin of ``PgItemStore`` (the ``StoreItems`` port), for ring-1 tests.

It answers as LangGraph's PostgreSQL store does without an index or TTL config, down to
its quirks: a filter names top-level fields of the value; equality is JSON equality
(``1 == 1.0``, ``true != 1``); ``$gt``/``$gte``/``$lt``/``$lte`` compare the field's
text with ``str(operand)``; a missing field fails every condition, ``$ne`` included;
search prefixes match whole labels; ``*`` in a list_namespaces prefix or suffix matches
any one label; ``query`` is ignored (nothing is embedded); ``ttl`` is dropped. The
contract suite (tests/contract/test_store_items.py) runs on both.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import msgspec

from aegra.domain.store import Item, Namespace, SearchItem

T = TypeVar("T", bound=Item)
_TEXT_OPS = {"$gt": str.__gt__, "$gte": str.__ge__, "$lt": str.__lt__, "$lte": str.__le__}


class MemoryItems:
    semantic = False

    def __init__(self) -> None:
        self._items: dict[tuple[Namespace, str], Item] = {}
        self._last = datetime.now(UTC)

    def _now(self) -> datetime:
        # Strictly increasing, so "newest first" never ties within one process.
        now = datetime.now(UTC)
        self._last = now if now > self._last else self._last + timedelta(microseconds=1)
        return self._last

    async def put(self, namespace: Namespace, key: str, value: dict[str, Any], *,
                  index: bool | list[str] | None, ttl: float | None) -> None:
        stamp = self._now().isoformat()
        old = self._items.get((namespace, key))
        # A JSON round trip: the caller's dict is not shared, as with a real database.
        stored = msgspec.json.decode(msgspec.json.encode(value))
        self._items[(namespace, key)] = Item(
            namespace=list(namespace), key=key, value=stored,
            created_at=old.created_at if old is not None else stamp, updated_at=stamp)

    async def get(self, namespace: Namespace, key: str, *,
                  refresh_ttl: bool | None) -> Item | None:
        found = self._items.get((namespace, key))
        return None if found is None else _copy(found, Item)

    async def delete(self, namespace: Namespace, key: str) -> None:
        self._items.pop((namespace, key), None)

    async def search(self, prefix: Namespace, *, filter: dict[str, Any] | None, limit: int,
                     offset: int, query: str | None,
                     refresh_ttl: bool | None) -> list[SearchItem]:
        hits = [item for (ns, _), item in self._items.items()
                if ns[:len(prefix)] == prefix and _passes(filter, item.value)]
        hits.sort(key=lambda item: item.updated_at, reverse=True)
        return [_copy(item, SearchItem) for item in hits[offset:offset + limit]]

    async def list_namespaces(self, *, prefix: Namespace | None, suffix: Namespace | None,
                              max_depth: int | None, limit: int,
                              offset: int) -> list[list[str]]:
        found: set[Namespace] = set()
        for ns, _ in self._items:
            if prefix and not _labels_match(ns[:len(prefix)], prefix):
                continue
            if suffix and (len(ns) < len(suffix)
                           or not _labels_match(ns[len(ns) - len(suffix):], suffix)):
                continue
            found.add(ns[:max_depth] if max_depth is not None else ns)
        # PostgreSQL orders the dot-joined text.
        ordered = sorted(found, key=".".join)
        return [list(ns) for ns in ordered[offset:offset + limit]]


def _copy(item: Item, kind: type[T]) -> T:
    return kind(namespace=list(item.namespace), key=item.key,
                value=msgspec.json.decode(msgspec.json.encode(item.value)),
                created_at=item.created_at, updated_at=item.updated_at)


def _labels_match(labels: Namespace, pattern: Namespace) -> bool:
    return len(labels) == len(pattern) and all(
        want in ("*", have) for have, want in zip(labels, pattern, strict=True))


def _passes(flt: dict[str, Any] | None, value: dict[str, Any]) -> bool:
    for name, cond in (flt or {}).items():
        if name not in value:
            return False
        have = value[name]
        ops = cond if isinstance(cond, dict) else {"$eq": cond}
        for op, operand in ops.items():
            if op == "$eq":
                ok = _json_eq(have, operand)
            elif op == "$ne":
                ok = not _json_eq(have, operand)
            else:
                ok = have is not None and _TEXT_OPS[op](_text(have), str(operand))
            if not ok:
                return False
    return True


def _text(value: object) -> str:
    """``value->>'field'``: strings bare, everything else as JSON text."""
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()


def _json_eq(a: object, b: object) -> bool:
    """jsonb equality: numbers by value, booleans apart from numbers, objects by keys."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_json_eq(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_eq(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)
