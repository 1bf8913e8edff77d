"""Threads: the pure rules (new ids, TTLs, the empty state, checkpoint configs, extract).

Threads and thread states cross the ports as plain JSON dicts in the SDK's ``Thread`` and
``ThreadState`` shapes: they are user data passed through, so a Struct would only add a
copy.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
import uuid
from collections.abc import Collection, Mapping
from typing import Any

from aegra.domain.errors import BadRequest, Invalid

Json = dict[str, Any]

# Bounds on client numbers (a 422 naming the field beyond them, never a 500).
MAX_TTL_MINUTES = 10 * 365 * 24 * 60  # ten years
MAX_OFFSET = 2**31 - 1

# A thread's fields as search's ``select`` names them (extract aliases may not shadow them).
THREAD_FIELDS = ("thread_id", "created_at", "updated_at", "state_updated_at", "metadata",
                 "config", "context", "status", "values", "interrupts", "error")


def uuid7() -> str:
    """Time-ordered UUID (RFC 9562 v7), as the platform gives new threads."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = ((ms & (1 << 48) - 1) << 80 | 0x7 << 76 | (rand >> 62 & 0xFFF) << 64
             | 0b10 << 62 | rand & (1 << 62) - 1)
    return str(uuid.UUID(int=value))


def ttl_info(ttl: Mapping[str, Any] | None) -> Json | None:
    """Stored form of a TTL request (``{ttl: minutes, strategy}``), as ``GET
    ?include=ttl`` reports it.

    The sweeper applies the strategy once ``expires_at`` passes; activity (a run, a
    state write) moves ``expires_at`` on (docs/ttl.md, migration 0004).
    """
    if not ttl or ttl.get("ttl") is None:
        return None
    minutes = float(ttl["ttl"])
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)
    return {"strategy": ttl.get("strategy") or "delete", "ttl_minutes": minutes,
            "expires_at": expires.isoformat()}


def empty_state(thread_id: str, checkpoint_ns: str = "") -> Json:
    """A thread with no checkpoint yet (spec §5): 200 with this, never 404."""
    return {"values": {}, "next": [], "tasks": [], "metadata": {}, "created_at": None,
            "checkpoint": {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns,
                           "checkpoint_id": None},
            "parent_checkpoint": None, "interrupts": [], "checkpoint_id": None,
            "parent_checkpoint_id": None}


def no_graph(thread_id: str) -> BadRequest:
    return BadRequest(
        f"Thread '{thread_id}' has no assigned graph ID. This usually occurs when no runs "
        "have been made on this particular thread. This operation requires a graph ID. "
        "Please ensure a run has been made for the thread or manually update the thread "
        "metadata (by setting the 'graph_id' field) before running this operation.")


def configurable(thread_id: str, *refs: Mapping[str, Any] | None) -> Json:
    """The checkpointer's ``configurable`` for a request: ``refs`` (checkpoint objects,
    later ones win) over the root namespace. ``thread_id`` is always the path's: a
    client's never reaches the checkpointer (spec §10.21)."""
    conf: Json = {"thread_id": thread_id, "checkpoint_ns": ""}
    for ref in refs:
        conf.update({k: v for k, v in (ref or {}).items()
                     if v is not None and k != "thread_id"})
    conf["thread_id"] = thread_id
    return conf


def graph_config(row: Mapping[str, Any], conf: Json) -> Json:
    """The thread's stored config overlaid with this request's configurable: what a
    graph factory sees."""
    base = dict(row.get("config") or {})
    base["configurable"] = {**(base.get("configurable") or {}), **conf}
    return base


_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PATH = re.compile(r"([^.\[\]]+)|\[(-?\d+)\]")
EXTRACTABLE = ("values", "metadata", "config", "interrupts")


def check_extract(extract: Mapping[str, str], reserved: Collection[str]) -> list[str]:
    """Validate search's ``extract`` like the platform (422s); returns the columns it
    reads. ``reserved``: the thread field names an alias may not shadow."""
    if len(extract) > 10:
        raise Invalid(f"Maximum of 10 extract paths allowed, got {len(extract)}",
                      field="extract")
    roots = []
    for alias, path in extract.items():
        if not _ALIAS.match(alias) or alias in reserved:
            raise Invalid(f"Extract key '{alias}' must be an identifier and not a thread "
                          "field name", field=f"extract.{alias}")
        root = path.split(".")[0].split("[")[0]
        if root not in EXTRACTABLE:
            raise Invalid(f"Extract path '{path}' must start with one of: "
                          f"{', '.join(EXTRACTABLE)}", field=f"extract.{alias}")
        roots.append(root)
    return roots


def extract(thread: Json, path: str) -> object:
    """The value at ``path`` (``values.messages[-1].content``) or None."""
    current: Any = thread
    for key, index in (m.groups() for m in _PATH.finditer(path)):
        if index is not None:
            if not isinstance(current, list) or not -len(current) <= int(index) < len(current):
                return None
            current = current[int(index)]
        elif isinstance(current, dict) and not key.startswith("_"):
            current = current.get(key)
        else:
            return None
    return current
