"""The long-term memory store: its items and the request rules checked before any I/O.

Items live under a namespace (a tuple of labels) and a key. Labels are non-empty and
contain no ``.``: the GET endpoint carries the namespace dot-joined in one query
parameter, so a dotted label could never be read back. Items come back under exactly
the namespace they were written to; per-user scoping is the auth handler's job (it may
rewrite the namespace), and the rules here run again on what it wrote.

An item filter is ``{field: value | {$op: value}}`` on the item's value, every entry
AND-ed (LangGraph's store language). ``conjoin`` folds an authorization filter
(``domain.auth``) into one, so the store applies both in its query.
"""

from __future__ import annotations

from typing import Any

import msgspec

from aegra.domain.auth import Filter, FilterError
from aegra.domain.errors import Invalid

Namespace = tuple[str, ...]
FILTER_OPS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"})
MAX_SEARCH_LIMIT = 1000
MAX_OFFSET = 2**31 - 1  # PostgreSQL integer: larger values fail in the query, not here
MAX_DEPTH = 2**31 - 1  # list_namespaces casts max_depth to integer
MAX_TTL_MINUTES = 10 * 365 * 24 * 60  # ten years


class Item(msgspec.Struct, kw_only=True):
    """One stored item; timestamps are ISO-8601 strings, as the SDK returns them."""

    namespace: list[str]
    key: str
    value: dict[str, Any]
    created_at: str
    updated_at: str


class SearchItem(Item, kw_only=True):
    score: float | None = None  # similarity, only when ``query`` ranked the results


class Unsatisfiable(Exception):
    """Two filters that no item can pass together: the search is empty without asking."""


def namespace(labels: object, field: str, *, allow_empty: bool = False) -> Namespace:
    """Validate a namespace given as a list (or tuple) of labels."""
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


def optional_namespace(labels: object, field: str) -> Namespace | None:
    """list_namespaces' prefix/suffix: absent or empty means no condition."""
    return namespace(labels, field) if labels else None


def dotted_namespace(text: str) -> Namespace:
    """The GET form: ``a.b.c``. Empty means the root namespace, which no item has."""
    labels = text.split(".") if text else []
    return namespace(labels, "namespace", allow_empty=True)


def key(value: object, field: str = "key") -> str:
    if not isinstance(value, str) or not value:
        raise Invalid(f"'{field}' is required and must be a non-empty string", field=field)
    return value


def value(data: object) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise Invalid("'value' must be an object", field="value")
    return data


def index(spec: object) -> list[str] | bool | None:
    """``None`` (the store's defaults), ``False`` (not indexed) or field paths."""
    if spec is None or spec is False:
        return None if spec is None else False
    if isinstance(spec, list) and all(isinstance(p, str) for p in spec):
        return spec
    raise Invalid("'index' must be false or a list of field paths", field="index")


def ttl(minutes: object) -> float | None:
    if minutes is None:
        return None
    if (isinstance(minutes, bool) or not isinstance(minutes, int | float)
            or not 0 < minutes <= MAX_TTL_MINUTES):  # NaN fails the comparison too
        raise Invalid(f"'ttl' must be a positive number of minutes up to "
                      f"{MAX_TTL_MINUTES}, got {minutes!r}", field="ttl")
    return float(minutes)


def max_depth(depth: object) -> int | None:
    if depth is None:
        return None
    if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= MAX_DEPTH:
        raise Invalid(f"'max_depth' must be an integer from 1 to {MAX_DEPTH}, got {depth!r}",
                      field="max_depth")
    return depth


def search_filter(flt: object) -> dict[str, Any] | None:
    """``{field: value | {$op: value}}``; an unknown operator is a 422, not a crash later."""
    if not flt:
        return None
    if not isinstance(flt, dict):
        raise Invalid("'filter' must be an object", field="filter")
    for name, cond in flt.items():
        if isinstance(cond, dict):
            if not cond:
                raise Invalid(f"filter.{name}: empty condition", field=f"filter.{name}")
            bad = sorted(set(cond) - FILTER_OPS)
            if bad:
                raise Invalid(f"filter.{name}: unsupported operator {bad[0]!r} "
                              f"(use one of {', '.join(sorted(FILTER_OPS))})",
                              field=f"filter.{name}")
    return flt


def page(limit: object, offset: object, *, max_limit: int = MAX_SEARCH_LIMIT) -> tuple[int, int]:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= max_limit:
        raise Invalid(f"'limit' must be an integer from 1 to {max_limit}, got {limit!r}",
                      field="limit")
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
        raise Invalid(f"'offset' must be an integer from 0 to {MAX_OFFSET}, got {offset!r}",
                      field="offset")
    return limit, offset


def conjoin(item_filter: dict[str, Any] | None, auth: Filter | None) -> dict[str, Any] | None:
    """One item filter meaning ``item_filter AND auth`` (spec/auth.md item 11).

    The platform sends ``{"$and": [item_filter, auth]}`` to its own store; LangGraph's
    PostgreSQL store has no ``$and``, so the two are merged field by field instead: a
    field in both keeps every operator of both. Two different ``$eq`` values on one field
    raise ``Unsatisfiable``; ``$contains`` and ``$or`` cannot be said in the store's
    language and raise ``FilterError`` (a 500: the handler, not the caller, is at fault).
    """
    if not auth:
        return item_filter
    merged: dict[str, Any] = dict(item_filter or {})
    for name, cond in _equalities(auth):
        if name not in merged:
            # Always the operator form: a bare object would read as operators.
            merged[name] = {"$eq": cond}
            continue
        have = merged[name]
        ops = dict(have) if isinstance(have, dict) else {"$eq": have}
        if "$eq" in ops and not _same(ops["$eq"], cond):
            raise Unsatisfiable(name)
        ops["$eq"] = cond
        merged[name] = ops
    return merged


def _equalities(auth: Filter) -> list[tuple[str, Any]]:
    """``auth`` (already checked by ``check_filter``) as (field, value) equalities."""
    out: list[tuple[str, Any]] = []
    for name, cond in auth.items():
        if name == "$and":
            for sub in cond:
                out.extend(_equalities(sub))
        elif name == "$or" or (isinstance(cond, dict) and "$contains" in cond):
            raise FilterError(f"store search filters support equality only, not "
                              f"{'$or' if name == '$or' else '$contains'} (field {name!r})")
        else:
            out.append((name, cond["$eq"] if isinstance(cond, dict) else cond))
    return out


def _same(a: object, b: object) -> bool:
    """Equal as JSON values: ``True`` and ``1`` differ there, unlike in Python. Numbers
    of different types count as different; at worst that returns nothing, never more."""
    return type(a) is type(b) and bool(a == b)
