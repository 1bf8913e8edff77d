"""Structured logs: one event per line; JSON off a terminal, ``key=value`` on one.

Use ``log = get_logger(__name__)`` then ``log.info("run.claimed", run_id=..., attempt=2)``.
The event name is the message; keyword arguments become fields. The request id and the
run/thread ids in scope are added from context variables, so handlers need not pass them.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections.abc import MutableMapping
from typing import Any

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
run_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("run_id", default=None)
thread_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("thread_id", default=None)

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class Logger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Keyword arguments become structured fields."""

    def process(self, msg: object, kwargs: MutableMapping[str, Any]
                ) -> tuple[object, MutableMapping[str, Any]]:
        exc_info = kwargs.pop("exc_info", None)
        stack_info = kwargs.pop("stack_info", False)
        fields = {k: v for k, v in kwargs.items()}
        return msg, {"extra": {"fields": fields}, "exc_info": exc_info, "stack_info": stack_info}


def get_logger(name: str) -> Logger:
    return Logger(logging.getLogger(name), {})


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for var, key in ((request_id, "request_id"), (run_id, "run_id"), (thread_id, "thread_id")):
        value = var.get()
        if value is not None:
            out[key] = value
    out.update(getattr(record, "fields", {}) or {})
    for key, value in record.__dict__.items():
        if key not in _RESERVED and key != "fields":
            out.setdefault(key, value)
    return out


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        doc.update(_fields(record))
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%H:%M:%S", time.localtime(record.created))
        fields = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{ts} {record.levelname:<7} {record.getMessage()}"
        if fields:
            line += "  " + fields
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup(level: str = "INFO", fmt: str = "auto") -> None:
    """Configure the root logger once per process (idempotent)."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else ConsoleFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    set_level(level)


# Library chatter that would otherwise print a line per request or per query.
# The MCP SDK logs its per-request transport's start and end (/mcp is stateless).
_NOISY = ("hypercorn.access", "httpx", "httpcore", "alembic.runtime.migration", "asyncio",
          "mcp.server.streamable_http", "mcp.server.streamable_http_manager")


def set_level(level: str) -> None:
    """The process's log level, now (``LOG_LEVEL`` at start, ``PUT /admin/log-level``)."""
    root = logging.getLogger()
    root.setLevel(level)
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    logging.getLogger("hypercorn.error").setLevel(logging.getLevelName(level))


def level() -> str:
    """The root logger's level name."""
    return logging.getLevelName(logging.getLogger().level)
