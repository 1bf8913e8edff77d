"""The long-term memory store: its port and the request rules checked before any I/O.

Items live under a namespace (a tuple of labels) and a key. Labels are non-empty and
contain no ``.``: the GET endpoint carries the namespace dot-joined in one query
parameter, so a dotted label could never be read back. Items come back under exactly
the namespace they were written to (no per-user prefixing).
"""

from __future__ import annotations

from typing import Any, Protocol

from aegra.domain.errors import Invalid

Namespace = tuple[str, ...]
FILTER_OPS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"})
MAX_SEARCH_LIMIT = 1000


class ItemStore(Protocol):
    """Items are plain dicts: ``namespace, key, value, created_at, updated_at`` (+ ``score``
    in search results), timestamps ISO-8601 strings."""

    semantic: bool  # whether ``query`` in search ranks by embeddings

    async def put(self, namespace: Namespace, key: str, value: dict[str, Any], *,
                  index: bool | list[str] | None, ttl: float | None) -> None: ...

    async def get(self, namespace: Namespace, key: str, *,
                  refresh_ttl: bool | None) -> dict[str, Any] | None: ...

    async def delete(self, namespace: Namespace, key: str) -> None: ...

    async def search(self, prefix: Namespace, *, filter: dict[str, Any] | None, limit: int,
                     offset: int, query: str | None,
                     refresh_ttl: bool | None) -> list[dict[str, Any]]: ...

    async def list_namespaces(self, *, prefix: Namespace | None, suffix: Namespace | None,
                              max_depth: int | None, limit: int,
                              offset: int) -> list[list[str]]: ...


def namespace(labels: Any, field: str, *, allow_empty: bool = False) -> Namespace:
    """Validate a namespace given as a list of labels."""
    if not isinstance(labels, list | tuple):
        raise Invalid(f"'{field}' must be a list of strings", field=field)
    if not labels and not allow_empty:
        raise Invalid(f"'{field}' must have at least one label", field=field)
    for label in labels:
        if not isinstance(label, str) or not label:
            raise Invalid(f"'{field}': namespace labels must be non-empty strings, "
                          f"got {label!r}", field=field)
        if "." in label:
            raise Invalid(f"'{field}': namespace label {label!r} must not contain '.'",
                          field=field)
    return tuple(labels)


def dotted_namespace(text: str) -> Namespace:
    """The GET form: ``a.b.c``. Empty means the root namespace, which no item has."""
    labels = text.split(".") if text else []
    return namespace(labels, "namespace", allow_empty=True)


def key(value: Any, field: str = "key") -> str:
    if not isinstance(value, str) or not value:
        raise Invalid(f"'{field}' is required and must be a non-empty string", field=field)
    return value


def search_filter(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """``{field: value | {$op: value}}``; an unknown operator is a 422, not a crash later."""
    if not value:
        return None
    for name, cond in value.items():
        if isinstance(cond, dict):
            if not cond:
                raise Invalid(f"filter.{name}: empty condition", field=f"filter.{name}")
            bad = sorted(set(cond) - FILTER_OPS)
            if bad:
                raise Invalid(f"filter.{name}: unsupported operator {bad[0]!r} "
                              f"(use one of {', '.join(sorted(FILTER_OPS))})",
                              field=f"filter.{name}")
    return value


def page(limit: int, offset: int, *, max_limit: int = MAX_SEARCH_LIMIT) -> tuple[int, int]:
    if not 0 <= limit <= max_limit:
        raise Invalid(f"'limit' must be between 0 and {max_limit}, got {limit}", field="limit")
    if offset < 0:
        raise Invalid(f"'offset' must not be negative, got {offset}", field="offset")
    return limit, offset
