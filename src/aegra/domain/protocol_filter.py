"""Agent Protocol v2 subscriptions and cursors: the filter a client streams with, the
``seq`` numbering, and the envelopes around each event.

``seq`` is an absolute cursor per thread, the same on every connection and instance:
``position * 2**36 + k`` for the k-th protocol event (k from 1) of the thread's run at
``position`` (its index among the thread's runs, oldest first). A client reconnecting
with ``since`` therefore resumes exactly after the last event it saw, and a command's
``applied_through_seq`` can point just before a run's first event. 2**36 events per run
and 2**17 runs per thread keep every ``seq`` below 2**53 (exact in JavaScript).
"""

from __future__ import annotations

from typing import Any

import msgspec

from aegra.domain.errors import Invalid
from aegra.domain.protocol_events import ProtocolEvent

RUN_BITS = 36
RUN_SPAN = 1 << RUN_BITS
CHANNELS = frozenset({"values", "updates", "messages", "tools", "lifecycle", "input",
                      "checkpoints", "tasks", "custom"})


def seq_of(position: int, k: int) -> int:
    return position * RUN_SPAN + k


def position_of(seq: int) -> int:
    """The position of the run a cursor points into."""
    return seq // RUN_SPAN


class Filter(msgspec.Struct, frozen=True):
    channels: frozenset[str]
    namespaces: tuple[tuple[str, ...], ...] | None = None
    depth: int | None = None
    since: int | None = None


def _int(body: dict[str, Any], key: str, prefix: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise Invalid(f"invalid field '{prefix}{key}': expected a non-negative integer, "
                      f"got {value!r}", field=f"{prefix}{key}")
    return value


def parse_filter(body: object, *, prefix: str = "", allow_since: bool = True) -> Filter:
    """An event-stream request body (``{channels, namespaces?, depth?, since?}``), or
    Invalid naming the field (``prefix``: where the body sits, e.g. ``params.``)."""
    if not isinstance(body, dict):
        raise Invalid(f"invalid field '{prefix or 'body'}': expected an object",
                      field=prefix.rstrip(".") or "body")
    channels = body.get("channels")
    if not isinstance(channels, list) or not channels:
        raise Invalid(f"invalid field '{prefix}channels': expected a non-empty list of "
                      "channel names", field=f"{prefix}channels")
    for i, ch in enumerate(channels):
        if not isinstance(ch, str) or not (
                ch in CHANNELS or (ch.startswith("custom:") and len(ch) > 7)):
            raise Invalid(f"invalid field '{prefix}channels[{i}]': unknown channel {ch!r}; "
                          f"expected one of {sorted(CHANNELS)} or 'custom:<name>'",
                          field=f"{prefix}channels")
    raw_ns = body.get("namespaces")
    namespaces: tuple[tuple[str, ...], ...] | None = None
    if raw_ns is not None:
        if not (isinstance(raw_ns, list) and all(
                isinstance(ns, list) and all(isinstance(s, str) for s in ns) for ns in raw_ns)):
            raise Invalid(f"invalid field '{prefix}namespaces': expected a list of lists of "
                          "strings", field=f"{prefix}namespaces")
        namespaces = tuple(tuple(ns) for ns in raw_ns) or None
    since = _int(body, "since", prefix) if allow_since else None
    return Filter(channels=frozenset(channels), namespaces=namespaces,
                  depth=_int(body, "depth", prefix), since=since)


def _segment_matches(prefix: str, candidate: str) -> bool:
    # A prefix segment without a task id (``sub``) matches any task of it (``sub:1``).
    return candidate == prefix or (":" not in prefix and candidate.split(":", 1)[0] == prefix)


def _namespace_matches(flt: Filter, namespace: list[str]) -> bool:
    if flt.namespaces is None:
        return flt.depth is None or len(namespace) <= flt.depth
    for prefix in flt.namespaces:
        if len(prefix) > len(namespace):
            continue
        if all(_segment_matches(p, c) for p, c in zip(prefix, namespace, strict=False)):
            if flt.depth is None or len(namespace) - len(prefix) <= flt.depth:
                return True
    return False


def channel_of(method: str, data: object) -> str:
    if method == "input.requested":
        return "input"
    if method == "custom" and isinstance(data, dict) and data.get("name"):
        return f"custom:{data['name']}"
    return method


def matches(flt: Filter, event: ProtocolEvent) -> bool:
    """Does the event pass the subscription (channel, then namespace prefix and depth)?"""
    method, namespace, data = event
    channel = channel_of(method, data)
    wanted = channel in flt.channels or (channel.startswith("custom") and "custom" in flt.channels)
    return wanted and _namespace_matches(flt, namespace)


def envelope(seq: int, event_id: str, event: ProtocolEvent, timestamp_ms: int
             ) -> dict[str, Any]:
    method, namespace, data = event
    return {"type": "event", "method": method, "seq": seq, "event_id": event_id,
            "params": {"namespace": namespace, "timestamp": timestamp_ms, "data": data}}


def success(command_id: int, result: dict[str, Any], applied_through: int | None = None
            ) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "success", "id": command_id, "result": result}
    if applied_through is not None:
        out["meta"] = {"applied_through_seq": applied_through}
    return out


def error(command_id: int | None, code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "id": command_id, "error": code, "message": message}
