"""Which request headers reach a run's ``config.configurable`` and the request log. Pure.

``HeaderRules`` is ``http.configurable_headers`` or ``http.logging_headers`` of the project
file: ``includes``/``excludes``, case-insensitive glob patterns where ``*`` is the only
wildcard (no regex from user input, so no pathological matching). As on the platform a
header is taken only when an include matches and no exclude does; with no includes,
nothing is taken.

``run_headers`` is what a run gets: the headers the rules allow, under their lower-cased
names, plus the tracing headers the platform always forwards (``langsmith-trace`` and the
LangSmith keys of ``baggage``). Credentials (``authorization``, ``x-api-key``,
``x-service-key``, ``x-tenant-id``) never go, whatever the rules say, and neither does a
header whose name is a key the server owns (``thread_id``, ``langgraph_auth_user``, ...):
a client cannot choose those through a header any more than through the body.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

from aegra.domain.auth import RESERVED_CONFIGURABLE

NEVER_TO_RUNS = frozenset({"authorization", "x-api-key", "x-service-key", "x-tenant-id"})
NEVER_LOGGED = frozenset({"authorization", "cookie", "set-cookie", "x-api-key"})
# Keys the runner pins or the server sets in configurable (adapters/langgraph/runner.py).
SERVER_KEYS = RESERVED_CONFIGURABLE | {
    "thread_id", "run_id", "assistant_id", "graph_id", "user_id", "cron_id",
    "checkpoint_id", "checkpoint_ns", "checkpoint_map",
}
TRACE = "langsmith-trace"
_BAGGAGE_KEYS = ("langsmith-metadata", "langsmith-tags", "langsmith-project")


def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.lower().split("*")),
                      re.DOTALL)


class HeaderRules:
    """Compiled include/exclude patterns; ``allows(name)`` takes a lower-cased name."""

    def __init__(self, includes: Iterable[str] | None = None,
                 excludes: Iterable[str] | None = None) -> None:
        self.includes = tuple(_glob(p) for p in includes or ())
        self.excludes = tuple(_glob(p) for p in excludes or ())

    def allows(self, name: str) -> bool:
        if any(p.fullmatch(name) for p in self.excludes):
            return False
        return any(p.fullmatch(name) for p in self.includes)

    def select(self, headers: Iterable[tuple[str, str]], never: frozenset[str]
               ) -> dict[str, str]:
        """The allowed headers, lower-cased names; a repeated header keeps its first value."""
        out: dict[str, str] = {}
        for key, value in headers:
            name = key.lower()
            if name not in never and name not in out and self.allows(name):
                out[name] = value
        return out


def run_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]] | None,
                rules: HeaderRules) -> dict[str, Any]:
    """What a run created by a request with ``headers`` gets in ``config.configurable``."""
    if headers is None:
        return {}
    # A dict or werkzeug's Headers (which keeps repeated headers): both have items().
    pairs = list(headers.items()) if hasattr(headers, "items") else list(headers)
    out: dict[str, Any] = rules.select(
        ((k, v) for k, v in pairs
         if k.lower() not in SERVER_KEYS and not k.startswith("__")), NEVER_TO_RUNS)
    lowered = {k.lower(): v for k, v in reversed(pairs)}  # first value wins
    if TRACE in lowered:
        out[TRACE] = lowered[TRACE]
        out.update(_baggage(lowered.get("baggage") or ""))
    return out


def _baggage(value: str) -> dict[str, Any]:
    """The LangSmith keys of a W3C ``baggage`` header; a malformed metadata is skipped."""
    out: dict[str, Any] = {}
    for item in value.split(","):
        key, sep, raw = item.strip().partition("=")
        if not sep or key not in _BAGGAGE_KEYS or key in out:
            continue
        text = urllib.parse.unquote(raw)
        if key == "langsmith-metadata":
            try:
                parsed = json.loads(text)
            except ValueError:
                continue
            if isinstance(parsed, dict):
                out[key] = parsed
        elif key == "langsmith-tags":
            out[key] = text.split(",")
        else:
            out[key] = text
    return out
