"""Authorization filters as SQL: the caller's filter goes inside the query (spec/auth.md).

``where`` compiles a checked ``Filter`` (``aegra.domain.auth``) against one JSONB
metadata column into a predicate with numbered parameters appended to ``args``. Scalar
equality uses containment (``@>``), which the GIN index on metadata serves; equality on
an object or array compares the value itself. A resource the filter excludes is simply
not found: the caller cannot tell it from one that does not exist.
"""

from __future__ import annotations

from typing import Any

from aegra.domain.auth import Filter


def where(flt: Filter | None, column: str, args: list[Any]) -> str:
    """SQL predicate for ``flt`` on ``column`` ("TRUE" when there is no filter)."""
    if not flt:
        return "TRUE"
    parts = []
    for key, cond in flt.items():
        if key in ("$or", "$and"):
            joiner = " OR " if key == "$or" else " AND "
            parts.append("(" + joiner.join(where(sub, column, args) for sub in cond) + ")")
        elif isinstance(cond, dict) and "$contains" in cond:
            want = cond["$contains"]
            args.append(key)
            args.append(want if isinstance(want, list) else [want])
            parts.append(f"({column} -> ${len(args) - 1}::text) @> ${len(args)}::jsonb")
        else:
            value = cond["$eq"] if isinstance(cond, dict) and "$eq" in cond else cond
            if isinstance(value, dict | list):
                args.append(key)
                args.append(value)
                parts.append(f"({column} -> ${len(args) - 1}::text) = ${len(args)}::jsonb")
            else:
                args.append({key: value})
                parts.append(f"{column} @> ${len(args)}::jsonb")
    return "(" + " AND ".join(parts) + ")"


def and_where(flt: Filter | None, column: str, args: list[Any]) -> str:
    """`` AND <filter>`` to append to a WHERE clause, or nothing: without a filter the
    statement stays exactly what it was before auth existed."""
    return f" AND {where(flt, column, args)}" if flt else ""


def thread_where(flt: Filter | None, thread_column: str, args: list[Any]) -> str:
    """For runs and crons: the filter applies to the parent thread's metadata."""
    if not flt:
        return "TRUE"
    return (f"EXISTS (SELECT 1 FROM thread ft WHERE ft.thread_id = {thread_column} "
            f"AND {where(flt, 'ft.metadata', args)})")
