"""Who is calling, and what an authorization filter may say (spec/auth.md).

A ``Caller`` is made once per request by the authentication edge and handed explicitly to
every service method; nothing reads identity from ambient state. ``ANONYMOUS`` is the
caller when ``AUTH_TYPE=noop``.

A ``Filter`` is what an ``@auth.on`` handler returned, checked here once
(``check_filter``) so adapters can compile it without further validation:

    {"k": v}                      metadata["k"] == v
    {"k": {"$eq": v}}             the same
    {"k": {"$contains": v}}       v is an element of the array metadata["k"]
    {"k": {"$contains": [a, b]}}  a and b are both elements of it
    {"$or": [f, g, ...]}          at least two filters, any matches
    {"$and": [f, g, ...]}         at least two filters, all match

``$or``/``$and`` nest at most two deep, as on the platform. ``matches`` is the same
meaning in Python, for the in-memory adapters and for store items.
"""

from __future__ import annotations

from typing import Any

import msgspec

from aegra.domain.errors import DomainError

Filter = dict[str, Any]

# Keys a client may not put into a run's config/context: the server sets them.
RESERVED_CONFIGURABLE = frozenset({
    "langgraph_auth_user", "langgraph_auth_user_id", "langgraph_auth_permissions",
    "langgraph_request_id", "__after_seconds__", "__request_start_time_ms__",
    "__pregel_node_finished", "langgraph_auth_user_object",
})
MAX_FILTER_DEPTH = 2


class Caller(msgspec.Struct, frozen=True, kw_only=True):
    """The authenticated identity of one request.

    ``user`` is the plain-data form of the user (identity, display_name,
    is_authenticated, permissions and any extra fields the authenticate handler
    returned): it is what a run stores so a worker elsewhere sees the same user.
    ``handle`` is the object handlers see as ``ctx.user`` (not serialized).
    """

    identity: str | None
    permissions: tuple[str, ...] = ()
    user: dict[str, Any] = {}
    handle: Any = None  # langgraph_sdk user object, for ctx.user; Any: user-defined type
    studio: bool = False


ANONYMOUS = Caller(identity=None)


class FilterError(DomainError):
    """A handler returned a filter the server cannot apply: a server-side bug (500)."""

    status = 500


def user_dict(identity: str, permissions: tuple[str, ...], extra: dict[str, Any]
              ) -> dict[str, Any]:
    out = {k: v for k, v in extra.items() if _plain(v)}
    out.update({"identity": identity, "permissions": list(permissions)})
    out.setdefault("display_name", identity)
    out.setdefault("is_authenticated", True)
    return out


def _plain(value: object) -> bool:
    try:
        msgspec.json.encode(value)
    except (TypeError, msgspec.EncodeError):
        return False
    return True


def check_filter(value: object, depth: int = 0) -> Filter:
    """The filter if the server can apply it; FilterError otherwise."""
    if not isinstance(value, dict):
        raise FilterError(f"authorization filter must be an object, got {type(value).__name__}")
    for key, cond in value.items():
        if not isinstance(key, str):
            raise FilterError(f"authorization filter key {key!r} must be a string")
        if key in ("$or", "$and"):
            if depth >= MAX_FILTER_DEPTH:
                raise FilterError(f"authorization filter nests {key} deeper than "
                                  f"{MAX_FILTER_DEPTH} levels")
            if not isinstance(cond, list) or len(cond) < 2:
                raise FilterError(f"authorization filter {key} needs a list of at least "
                                  "two filters")
            for sub in cond:
                check_filter(sub, depth + 1)
        elif key.startswith("$"):
            raise FilterError(f"authorization filter operator {key!r} is not supported")
        elif isinstance(cond, dict):
            if len(cond) != 1 or next(iter(cond)) not in ("$eq", "$contains"):
                raise FilterError(f"authorization filter on {key!r}: expected a value, "
                                  "{'$eq': v} or {'$contains': v}")
    return value


def matches(flt: Filter | None, metadata: dict[str, Any] | None) -> bool:
    """Does ``metadata`` pass ``flt``? (``None`` passes everything.)"""
    if not flt:
        return True
    data = metadata or {}
    for key, cond in flt.items():
        if key == "$or":
            if not any(matches(sub, data) for sub in cond):
                return False
        elif key == "$and":
            if not all(matches(sub, data) for sub in cond):
                return False
        elif isinstance(cond, dict) and "$contains" in cond:
            have = data.get(key)
            want = cond["$contains"]
            wanted = want if isinstance(want, list) else [want]
            if not isinstance(have, list) or not _contains(have, wanted):
                return False
        else:
            want = cond["$eq"] if isinstance(cond, dict) and "$eq" in cond else cond
            if key not in data or not _equal(data[key], want):
                return False
    return True


def _equal(a: object, b: object) -> bool:
    """JSON equality, as JSONB compares: ``true`` is not ``1`` (Python says it is)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict | list) or isinstance(b, dict | list):
        return False
    return a == b


def _contains(have: object, want: object) -> bool:
    """JSONB containment (``@>``) below the top level: objects by their keys, arrays
    by each wanted element being contained in some element, scalars by equality."""
    if isinstance(have, dict) and isinstance(want, dict):
        return all(k in have and _contains(have[k], v) for k, v in want.items())
    if isinstance(have, list) and isinstance(want, list):
        return all(any(_contains(h, w) for h in have) for w in want)
    if isinstance(have, dict | list) or isinstance(want, dict | list):
        return False
    return _equal(have, want)


def strip_reserved(mapping: dict[str, Any] | None) -> tuple[dict[str, Any] | None, list[str]]:
    """``mapping`` without the server-owned keys, and the keys removed."""
    if not mapping:
        return mapping, []
    dropped = [k for k in mapping if k in RESERVED_CONFIGURABLE]
    if not dropped:
        return mapping, []
    return {k: v for k, v in mapping.items() if k not in RESERVED_CONFIGURABLE}, dropped


def with_identity(config: dict[str, Any], user: dict[str, Any] | None) -> dict[str, Any]:
    """A run's config with the server-owned identity keys (spec/auth.md item 13).

    Whatever a client put under the reserved keys is dropped first; then, for an
    authenticated caller, ``langgraph_auth_user`` (plain data: the runner hands the
    graph an object with attribute and key access), ``langgraph_auth_user_id`` and
    ``langgraph_auth_permissions``. Stored in the run's execution parameters, so a
    worker on any instance, a resumed run and a cron firing see the same user.
    """
    configurable, _ = strip_reserved(config.get("configurable") or {})
    conf = dict(configurable or {})
    if user is not None:
        conf["langgraph_auth_user"] = user
        conf["langgraph_auth_user_id"] = user["identity"]
        conf["langgraph_auth_permissions"] = list(user.get("permissions") or [])
    return {**config, "configurable": conf}
